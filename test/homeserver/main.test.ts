/**
 * `npm run homeserver` as a real child process: one line with what a developer needs, a working
 * homeserver behind it, one clear line when the port is taken, a clean stop on SIGTERM.
 */
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import t from 'tap'
import { spawnScript } from '../helpers/process.js'

interface Run { child: ChildProcess, stdout: () => string, stderr: () => string, exited: Promise<number | null> }

function start (env: Record<string, string>): Run {
  const child = spawnScript('dev/homeserver/main.ts', [], env)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, stdout: () => stdout, stderr: () => stderr, exited }
}

async function firstLine (run: Run): Promise<string> {
  for (let i = 0; i < 500; i++) {
    if (run.stdout().includes('\n')) return run.stdout()
    if (run.child.exitCode !== null) throw new Error(`exited before printing its line: ${run.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no line printed within 10 s: ${run.stdout()} ${run.stderr()}`)
}

t.test('prints one line with the URL, admin token, shared secret and fixtures, and serves them', async (t) => {
  const run = start({ HOMESERVER_PORT: '0' })
  t.teardown(() => { run.child.kill('SIGKILL') })
  const line = await firstLine(run)
  t.equal(line.split('\n').length, 2, 'exactly one line')
  const url = /at (http:\/\/127\.0\.0\.1:\d+) /.exec(line)?.[1] as string
  const token = /admin token (\S+) /.exec(line)?.[1] as string
  t.match(line, /registration shared secret \S+ /)
  for (const fixture of ['@dave:test.local', '@bert:test.local', '#fresh-private-admin', '#blocked-room', '#support']) t.match(line, fixture)

  const whoami = await fetch(`${url}/_matrix/client/v3/account/whoami`, { headers: { authorization: `Bearer ${token}` } })
  t.same(await whoami.json(), { user_id: '@admin:test.local', is_guest: false, device_id: 'SIMADMIN1' }, 'the printed token is the admin')
  const space = await fetch(`${url}/_synapse/admin/v1/rooms/${encodeURIComponent('!simSupportSpace:test.local')}`, { headers: { authorization: `Bearer ${token}` } })
  t.match(await space.json(), { room_type: 'm.space', canonical_alias: '#support:test.local' })

  run.child.kill('SIGTERM')
  t.equal(await run.exited, 0, 'stops cleanly on SIGTERM')
})

t.test('HOMESERVER_FIXTURE=join serves the join recording\'s rooms', async (t) => {
  const run = start({ HOMESERVER_PORT: '0', HOMESERVER_FIXTURE: 'join', HOMESERVER_ADMIN_TOKEN: 'syt_fixed_admin' })
  t.teardown(() => { run.child.kill('SIGKILL') })
  const line = await firstLine(run)
  t.match(line, 'join fixture')
  t.match(line, 'admin token syt_fixed_admin ')
  const url = /at (http:\/\/127\.0\.0\.1:\d+) /.exec(line)?.[1] as string
  const alias = await fetch(`${url}/_matrix/client/v3/directory/room/%23public-test%3Atest.local`)
  t.same(await alias.json(), { room_id: '!zfjAIbbHHrGJMZdmwr:test.local', servers: ['test.local'] })
})

t.test('a port that is taken gives one line with the hint', async (t) => {
  const taken = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => taken.once('listening', resolve))
  t.teardown(() => { taken.close() })
  const port = String((taken.address() as { port: number }).port)
  const run = start({ HOMESERVER_PORT: port })
  t.equal(await run.exited, 1)
  t.equal(run.stderr(), `Cannot listen on 127.0.0.1:${port}: EADDRINUSE (port ${port} is taken: set HOMESERVER_PORT to another one)\n`)
  t.equal(run.stdout(), '')
})
