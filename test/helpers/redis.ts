import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

interface Tap {
  after: (fn: () => unknown) => void
}

function onPath (command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    try {
      accessSync(join(dir, command), constants.X_OK)
      return join(dir, command)
    } catch {}
  }
  return undefined
}

/** The redis-server binary, when installed (`.ci/run` installs Debian's package). */
export const redisServerPath = onPath('redis-server')

/** For `t.test(name, { skip: skipWithoutRedis('…') }, …)`: the tests say why they did not run. */
export function skipWithoutRedis (what: string): string | false {
  return redisServerPath === undefined ? `redis-server not installed: skipping ${what} (apt-get install redis-server)` : false
}

/** Polls `condition` until it holds; on timeout the error says what it waited for. */
export async function until (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export interface RedisServer {
  port: number
  /** redis://127.0.0.1:<port> (with the password, when one was asked for). */
  url: string
  /** SIGKILL: the server dies at once, without closing connections politely or saving anything. */
  kill: () => Promise<void>
  /** SIGSTOP / SIGCONT: the server keeps its connections but answers nothing. */
  pause: () => void
  resume: () => void
  /** A fresh server (empty) on the same port. */
  restart: () => Promise<void>
}

export interface RedisServerOptions {
  /** `requirepass`: clients must authenticate. */
  password?: string
}

/**
 * A real redis-server on a free loopback port, in its own temporary directory, persisting
 * nothing; stopped (and the directory removed) when the test ends.
 */
export async function startRedisServer (t: Tap, options: RedisServerOptions = {}): Promise<RedisServer> {
  if (redisServerPath === undefined) throw new Error('redis-server is not installed')
  const binary = redisServerPath
  const dir = mkdtempSync(join(tmpdir(), 'gateway-redis-'))
  let child: ChildProcess | undefined
  let port = 0

  async function launch (): Promise<boolean> {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'notice']
    if (options.password !== undefined) args.push('--requirepass', options.password)
    const server = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    child = server
    let output = ''
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { server.kill('SIGKILL'); resolve(false) }, 10_000)
      server.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) { clearTimeout(timer); resolve(true) }
      })
      server.once('exit', () => { clearTimeout(timer); resolve(false) })
    })
  }
  async function kill (): Promise<void> {
    const server = child
    if (server === undefined || server.exitCode !== null || server.signalCode !== null) return
    const exited = new Promise((resolve) => server.once('exit', resolve))
    server.kill('SIGKILL')
    await exited
  }

  t.after(async () => {
    await kill()
    rmSync(dir, { recursive: true, force: true })
  })

  // Another process may take the free port between the probe and the bind: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    port = await freePort()
    if (await launch()) break
    port = 0
  }
  if (port === 0) throw new Error('redis-server did not start on any of 5 free ports')
  const auth = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`

  return {
    port,
    url: `redis://${auth}127.0.0.1:${port}`,
    kill,
    pause: () => { child?.kill('SIGSTOP') },
    resume: () => { child?.kill('SIGCONT') },
    async restart () {
      await kill()
      for (let attempt = 0; attempt < 5; attempt++) {
        if (await launch()) return
      }
      throw new Error(`redis-server did not start again on port ${port}`)
    }
  }
}
