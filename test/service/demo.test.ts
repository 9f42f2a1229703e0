/**
 * `npm run demo` needs no configuration and prints two curl commands: pasted as they are,
 * the first joins (200) and the second is denied (403). The fixtures it lists answer as it
 * says; a taken port is one line with the PORT= hint. `npm run token` refuses bad arguments
 * with a usage line.
 */
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { request } from 'undici'
import { compiled } from '../helpers/compiled.js'
import { collect, exited, runScript, spawnScript } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** Runs the parts of a printed curl command that matter: URL, headers and --json body. */
async function runCurl (command: string, replace: { url?: [string, string], body?: string } = {}) {
  let url = /'(http:\/\/[^']+)'/.exec(command)?.[1] as string
  if (replace.url !== undefined) url = url.replace(...replace.url)
  const authorization = /-H 'Authorization: ([^']+)'/.exec(command)?.[1] as string
  const json = replace.body ?? /--json '([^']+)'/.exec(command)?.[1] as string
  const response = await request(url, { method: 'POST', headers: { authorization, 'content-type': 'application/json', accept: 'application/json' }, body: json })
  return { status: response.statusCode, body: await response.body.json() as Record<string, unknown> }
}

t.test('the demo prints curl commands that work when pasted, and fixtures that answer as listed', async (t) => {
  const child = spawnScript('dev/demo.ts', [], { PORT: '0' })
  t.after(() => { child.kill('SIGKILL') })
  const out = collect(child)
  await waitFor(() => out.stdout.includes('Ctrl-C') || child.exitCode !== null, 'the demo to print its instructions', { timeoutMs: 60_000, describe: () => `${out.stdout}${out.stderr}` })
  const commands = out.stdout.split('\n').filter((line) => line.startsWith('curl '))
  t.equal(commands.length, 2, out.stdout)
  t.match(commands[0], /%23public-test:test.local/, 'the alias is sent as %23')
  t.match(commands[0], /--json/)
  const join = commands[0] as string
  const allowed = await runCurl(join)
  t.equal(allowed.status, 200)
  t.match(allowed.body, { room_id: /^!/, user_id: '@alice:test.local' })
  const denied = await runCurl(commands[1] as string)
  t.equal(denied.status, 403)
  t.equal(denied.body.code, 'policy_denied')

  // Each fixture the demo lists answers with the code it names.
  const room = (listed: RegExp) => (listed.exec(out.stdout)?.[1] as string)
  const fixtures: Array<[string, { url?: [string, string], body?: string }, string | 200]> = [
    ['@dave is deactivated', { body: '{"user_id": "@dave:test.local"}' }, 'user_deactivated'],
    ['@erin is banned', { body: '{"user_id": "@erin:test.local"}' }, 'user_banned'],
    ['@nobody does not exist', { body: '{"user_id": "@nobody:test.local"}' }, 'user_not_found'],
    ['private room with the admin in it', { url: ['%23public-test', '%23private-admin'] }, 200],
    ['admin not in the room', { url: ['%23public-test:test.local', room(/(!\S+)\s+private, the admin account is not in it/)] }, 'admin_not_in_room'],
    ['admin may not invite', { url: ['%23public-test:test.local', room(/(!\S+)\s+the admin account may not invite/)] }, 'admin_cannot_invite'],
    ['blocked room', { url: ['%23public-test:test.local', room(/(!\S+)\s+blocked on the server/)] }, 'room_blocked']
  ]
  for (const [what, replace, expected] of fixtures) {
    const answer = await runCurl(join, replace)
    if (expected === 200) t.equal(answer.status, 200, what)
    else t.equal(answer.body.code, expected, what)
  }

  const mint = /^ {2}(JWT_SECRET_FILE=\S+) npm run -s token -- (.*)$/m.exec(out.stdout)
  t.ok(mint, 'says how to mint more tokens')
  const secretFile = (mint?.[1] as string).split('=')[1] as string
  const minted = await runScript('dev/sign-token.ts', ['--sub', 'me', '--roles', 'matrix-admin'], { JWT_SECRET_FILE: secretFile })
  t.equal(minted.code, 0, minted.stderr)
  const withMinted = await runCurl(join.replace(/Bearer [^']+/, `Bearer ${minted.stdout.trim()}`))
  t.equal(withMinted.status, 200, 'a minted token works with the demo')

  child.kill('SIGTERM')
  t.equal((await exited(child)).code, 0, 'stops cleanly')
  const afterStop = await runScript('dev/sign-token.ts', [], { JWT_SECRET_FILE: secretFile })
  t.match(afterStop.stderr, /cannot be read \(ENOENT\)/, 'the secret file is removed when the demo stops')
})

t.test('the demo on a taken port says so in one line with the PORT= hint', async (t) => {
  const taken = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => taken.once('listening', resolve))
  t.after(() => { taken.close() })
  const port = String((taken.address() as { port: number }).port)
  const result = await runScript('dev/demo.ts', [], { PORT: port })
  t.equal(result.code, 1)
  t.equal(result.stderr, `Port ${port} on 127.0.0.1 is taken; run the demo on another one: PORT=8081 npm run demo\n`)
})

t.test('npm run token signs a token the gateway accepts', async (t) => {
  const { startHarness, JWT_SECRET } = await import('../helpers/harness.js')
  const h = await startHarness(t)
  const token = await new Promise<string>((resolve, reject) => {
    execFile('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, compiled('dev/sign-token.ts'), '--sub', 'cli', '--roles', 'matrix-admin'],
      { cwd: root, env: { PATH: process.env.PATH ?? '', JWT_SECRET } }, (error, stdout) => { error === null ? resolve(stdout.trim()) : reject(error) })
  })
  const res = await h.join(encodeURIComponent('!zfjAIbbHHrGJMZdmwr:test.local'), { user_id: '@alice:test.local' }, { token })
  t.equal(res.status, 200)
  t.match(h.audit()[0], { actor: { sub: 'cli', roles: ['matrix-admin'] } })
})

t.test('npm run token refuses bad arguments with a usage line, never a stack trace, never exp: null', async (t) => {
  const usage = /\nusage: JWT_SECRET_FILE=<file> npm run -s token -- \[--sub <caller>\]/
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--ttl', 'abc'], { JWT_SECRET: 'x' }, /^--ttl must be a whole number/],
    [['--ttl', '0'], { JWT_SECRET: 'x' }, /^--ttl must be a whole number/],
    [['--ttl', '1e3'], { JWT_SECRET: 'x' }, /^--ttl must be a whole number/],
    [['--bogus'], { JWT_SECRET: 'x' }, /^Unknown option '--bogus'/],
    [['--sub'], { JWT_SECRET: 'x' }, /^Option '--sub <value>' argument missing/],
    [['stray'], { JWT_SECRET: 'x' }, /^Unexpected argument 'stray'/],
    [['--roles', ' , '], { JWT_SECRET: 'x' }, /^--roles must name at least one role/],
    [[], {}, /^Set JWT_SECRET or JWT_SECRET_FILE/],
    [[], { JWT_SECRET_FILE: '/nonexistent/secret' }, /^JWT_SECRET_FILE names a file that cannot be read \(ENOENT\)/]
  ]
  for (const [args, env, message] of cases) {
    const result = await runScript('dev/sign-token.ts', args, env)
    const what = args.join(' ') || JSON.stringify(env)
    t.equal(result.code, 2, `${what}: exit 2`)
    t.match(result.stderr, message, `${what}: says what is wrong`)
    t.match(result.stderr, usage, `${what}: usage line`)
    t.notMatch(result.stderr, /\n\s+at /, `${what}: no stack trace`)
    t.equal(result.stdout, '', `${what}: no token`)
  }
  const help = await runScript('dev/sign-token.ts', ['--help'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /^usage: /)
})
