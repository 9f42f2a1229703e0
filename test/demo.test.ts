/**
 * `npm run demo` needs no configuration and prints two curl commands: pasted as they are,
 * the first joins (200) and the second is denied (403).
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { request } from 'undici'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Runs the parts of a printed curl command that matter: URL, headers and --json body. */
async function runCurl (command: string) {
  const url = /'(http:\/\/[^']+)'/.exec(command)?.[1] as string
  const authorization = /-H 'Authorization: ([^']+)'/.exec(command)?.[1] as string
  const json = /--json '([^']+)'/.exec(command)?.[1] as string
  const response = await request(url, { method: 'POST', headers: { authorization, 'content-type': 'application/json', accept: 'application/json' }, body: json })
  return { status: response.statusCode, body: await response.body.json() as Record<string, unknown> }
}

t.test('the demo prints curl commands that work when pasted', async (t) => {
  // Through sh to drop tap's NODE_OPTIONS (see helpers/process.ts).
  const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" --import tsx dev/demo.ts', process.execPath], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.after(() => { child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  for (let i = 0; i < 300 && !out.includes('Ctrl-C'); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  const commands = out.split('\n').filter((line) => line.startsWith('curl '))
  t.equal(commands.length, 2, out)
  t.match(commands[0], /%23public-test:test.local/, 'the alias is sent as %23')
  t.match(commands[0], /--json/)
  const allowed = await runCurl(commands[0] as string)
  t.equal(allowed.status, 200)
  t.match(allowed.body, { room_id: /^!/, user_id: '@alice:test.local' })
  const denied = await runCurl(commands[1] as string)
  t.equal(denied.status, 403)
  t.equal(denied.body.code, 'policy_denied')
  child.kill('SIGTERM')
  const code = await new Promise((resolve) => child.once('exit', resolve))
  t.equal(code, 0, 'stops cleanly')
})

t.test('npm run token signs a token the gateway accepts', async (t) => {
  const { startHarness, JWT_SECRET } = await import('./helpers/harness.js')
  const { execFile } = await import('node:child_process')
  const h = await startHarness(t)
  const token = await new Promise<string>((resolve, reject) => {
    execFile('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" --import tsx dev/sign-token.ts --sub cli --roles matrix-admin', process.execPath],
      { cwd: root, env: { PATH: process.env.PATH ?? '', JWT_SECRET } }, (error, stdout) => { error === null ? resolve(stdout.trim()) : reject(error) })
  })
  const res = await h.join(encodeURIComponent('!zfjAIbbHHrGJMZdmwr:test.local'), { user_id: '@alice:test.local' }, { token })
  t.equal(res.status, 200)
  t.match(h.audit()[0], { actor: { sub: 'cli', roles: ['matrix-admin'] } })
})
