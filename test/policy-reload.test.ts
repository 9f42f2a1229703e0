/**
 * The policy over the gateway's life: SIGHUP reloads it in a real process (a bad new file keeps
 * the old policy and logs why), a bad file stops the start with one line, and the room facts the
 * decisions use are cached per room, bounded, and refreshed within their lifetime.
 */
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { SimulatedHomeserver } from '../dev/homeserver/server.js'
import { RECORDED_ROOMS, SPEC_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'
import { ADMIN_TOKEN, JWT_SECRET, LogCapture, startHarness } from './helpers/harness.js'
import { collect, exited, listening, runServer, spawnServer } from './helpers/process.js'
import { send, tempPolicy, waitFor } from './helpers/policy-http.js'

const enc = encodeURIComponent
const READS_ONLY = `
rules:
  - name: helpdesk-reads-rooms
    roles: [helpdesk]
    actions: [room.members.read]
`
const READS_AND_LOOKUPS = `
rules:
  - name: helpdesk-reads-rooms
    roles: [helpdesk]
    actions: [room.members.read]
  - name: helpdesk-looks-up-users
    roles: [helpdesk]
    actions: [user.read]
`

t.test('SIGHUP: a new policy is in force; a bad new file keeps the old one, logs why, and the process keeps serving', async (t) => {
  const h = await startHarness(t)
  const policy = tempPolicy(t, READS_ONLY)
  const child = spawnServer(h.serverEnv({ POLICY_FILE: policy.file }))
  t.after(() => { child.kill('SIGKILL') })
  const out = collect(child)
  const url = await listening(child, out)
  const token = h.token({ roles: ['helpdesk'] })
  const lookup = async () => (await send(url, 'GET', `/v1/users/${enc('@alice:test.local')}`, token)).status

  t.equal(await lookup(), 403, 'user.read is not in the first policy')
  policy.write(READS_AND_LOOKUPS)
  child.kill('SIGHUP')
  t.equal(await waitFor('user.read to be allowed after SIGHUP', lookup, (status) => status === 200), 200, 'the new policy is in force')
  t.match(out.stdout, /"msg":"reloaded: policy [^"]+ \(2 rules\); audit/)
  t.match(out.stdout, /"rules":2/)

  policy.write(READS_AND_LOOKUPS.replace('[user.read]', '[user.delete]'))
  child.kill('SIGHUP')
  const errorLine = await waitFor('the reload error in the service log', async () => out.stdout.split('\n').find((line) => line.includes('the new policy file is not valid')), (line) => line !== undefined)
  t.match(errorLine, /"level":50/, 'at error')
  t.match(errorLine, new RegExp(`${policy.file.replaceAll('.', '\\.')}: rule \\\\"helpdesk-looks-up-users\\\\" \\(rules\\[1\\]\\): actions\\[0\\] \\\\"user\\.delete\\\\" is not an action`), 'names the file, the rule and the field')
  t.equal(await lookup(), 200, 'the previous policy stays in force')
  t.equal((await send(url, 'GET', `/v1/rooms/${enc(RECORDED_ROOMS.publicTest)}/members`, token)).status, 200, 'the process keeps serving')

  policy.write('rules: [')
  child.kill('SIGHUP')
  await waitFor('a second reload error', async () => out.stdout.split('\n').filter((line) => line.includes('the new policy file is not valid')).length, (count) => count === 2)
  t.match(out.stdout, /not valid YAML/)
  t.equal(await lookup(), 200, 'still the last good policy')

  policy.write(READS_ONLY)
  child.kill('SIGHUP')
  t.equal(await waitFor('user.read to be refused again', lookup, (status) => status === 403), 403, 'a good file after a bad one is taken')
  t.equal(child.exitCode, null, 'still running')
  child.kill('SIGTERM')
  t.same(await exited(child), { code: 0, signal: null })
})

t.test('a bad policy file at start: exit 1 with one line naming the file, the rule and the field', async (t) => {
  const h = await startHarness(t)
  const cases: Array<[string, string, RegExp]> = [
    ['bad YAML', 'rules:\n  - name: a\n    actions: [room.join\n', /: line \d+, column \d+: not valid YAML: /],
    ['an unknown action', 'rules:\n  - name: helpdesk\n    actions: [room.join, room.explode]\n', /: rule "helpdesk" \(rules\[0\]\): actions\[1\] "room\.explode" is not an action/],
    ['a CEL expression that does not parse', 'rules:\n  - name: it-only\n    actions: [room.join]\n    when: \'caller.claims.department == \'\n', /: rule "it-only" \(rules\[0\]\): when does not parse at character \d+: /],
    ['a CEL expression with a typo in a field', 'rules:\n  - name: typo\n    actions: [room.join]\n    when: \'"admin" in caller.rols\'\n', /: rule "typo" \(rules\[0\]\): when is not valid /],
    ['an unknown field', 'rules:\n  - name: ok\n    actions: [room.join]\n  - name: second\n    action: [room.join]\n', /: rule "second" \(rules\[1\]\): "action" is not a known field/],
    ['a bad room pattern', 'rules:\n  - name: rooms\n    actions: [room.join]\n    rooms: ["support-*"]\n', /: rule "rooms" \(rules\[0\]\): rooms\[0\] "support-\*" is not a room pattern/]
  ]
  await Promise.all(cases.map(async ([what, yaml, expected]) => {
    const policy = tempPolicy(t, yaml)
    const run = await runServer(h.serverEnv({ POLICY_FILE: policy.file }))
    t.equal(run.code, 1, `${what}: exit 1`)
    const lines = run.stderr.split('\n').filter((line) => line !== '')
    t.equal(lines.length, 1, `${what}: one line (${run.stderr})`)
    t.ok(lines[0]?.startsWith(`${policy.file}: `), `${what}: names the file`)
    t.match(lines[0], expected, `${what}: names the rule and the field`)
    t.notMatch(run.stdout, /Server listening/, `${what}: never listened`)
  }))
  const missing = await runServer(h.serverEnv({ POLICY_FILE: '/nonexistent/policy.yaml' }))
  t.equal(missing.code, 1)
  t.equal(missing.stderr, '/nonexistent/policy.yaml: cannot be read (ENOENT)\n')
})

/** A gateway whose room facts live `ttlMs` and at most `maxEntries` rooms, in front of its own homeserver. */
async function gatewayWithRoomFacts (t: Test, yaml: string, roomFacts: { ttlMs?: number, maxEntries?: number }) {
  const homeserver = new SimulatedHomeserver({ adminToken: ADMIN_TOKEN })
  const homeserverUrl = await homeserver.listen()
  t.after(async () => { await homeserver.close() })
  const policy = tempPolicy(t, yaml)
  const app = await buildApp(loadConfig({
    SYNAPSE_URL: homeserverUrl, SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN, SYNAPSE_SERVER_NAME: 'test.local', JWT_SECRET, POLICY_FILE: policy.file
  }), { logDestination: new LogCapture(), roomFacts })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.after(async () => { await app.close() })
  const token = signJwt({ alg: 'HS256' }, helpdeskClaims({ roles: ['helpdesk'] }), JWT_SECRET)
  const read = async (room: string) => (await send(url, 'GET', `/v1/rooms/${enc(room)}/members`, token)).status
  return { homeserver, read }
}

const CACHE_POLICY = `
rules:
  - name: public-rooms
    roles: [helpdesk]
    actions: [room.members.read]
    rooms: ["#public-*:test.local"]
  - name: support-space
    roles: [helpdesk]
    actions: [room.members.read]
    rooms: ["space:#support:test.local"]
  - name: not-the-blocked-room
    effect: deny
    actions: ["*"]
    rooms: ["#blocked:test.local"]
`

t.test('room facts are cached per room: a second request asks Synapse nothing new', async (t) => {
  const { homeserver, read } = await gatewayWithRoomFacts(t, CACHE_POLICY, {})
  const facts = () => homeserver.callsTo('room_state').length + homeserver.callsTo('room_details').length + homeserver.callsTo('directory').length
  t.equal(await read(RECORDED_ROOMS.publicTest), 200)
  const first = facts()
  t.equal(homeserver.callsTo('directory').length, 1, 'the space\'s alias resolved once')
  t.equal(homeserver.callsTo('room_state').length, 2, 'the space\'s children and the room\'s aliases, one read each')
  t.equal(await read(RECORDED_ROOMS.publicTest), 200)
  t.equal(await read('#public-test:test.local'), 200)
  t.equal(facts(), first + 1, 'no new room facts for the same room (only the new alias is resolved)')
  t.equal(await read(RECORDED_ROOMS.publicBob), 200, 'another room: #public-bob')
  t.equal(homeserver.callsTo('room_state').length, 3, 'one more read, for that room only (the space is cached too)')
})

t.test('room facts expire: a change in Synapse is seen within their lifetime', async (t) => {
  const { homeserver, read } = await gatewayWithRoomFacts(t, CACHE_POLICY, { ttlMs: 300 })
  t.equal(await read(RECORDED_ROOMS.publicBob), 200, 'allowed by its canonical alias')
  const publicBob = homeserver.state.rooms.get(RECORDED_ROOMS.publicBob)
  if (publicBob === undefined) throw new Error('fixture: #public-bob')
  publicBob.canonicalAlias = '#blocked:test.local'
  t.equal(await waitFor('the new canonical alias to be seen (denied)', async () => await read(RECORDED_ROOMS.publicBob), (status) => status === 403, 5000), 403)

  t.equal(await read(RECORDED_ROOMS.blocked), 200, 'a child of the space')
  const space = homeserver.state.rooms.get(SPEC_ROOMS.supportSpace)
  if (space === undefined) throw new Error('fixture: the space')
  space.spaceChildren = space.spaceChildren.filter((child) => child !== RECORDED_ROOMS.blocked)
  t.equal(await waitFor('the room to leave the space (denied)', async () => await read(RECORDED_ROOMS.blocked), (status) => status === 403, 5000), 403)
})

t.test('room facts are bounded: beyond maxEntries the oldest room is asked again', async (t) => {
  const { homeserver, read } = await gatewayWithRoomFacts(t, `
rules:
  - name: public-rooms
    roles: [helpdesk]
    actions: [room.members.read]
    rooms: ["#public-*:test.local"]
`, { maxEntries: 2 })
  const reads = (room: string) => homeserver.callsTo('room_state').filter((call) => call.url.includes(enc(room))).length
  for (const room of [RECORDED_ROOMS.publicTest, RECORDED_ROOMS.publicBob]) t.equal(await read(room), 200)
  t.equal(await read(RECORDED_ROOMS.publicTest), 200)
  t.equal(reads(RECORDED_ROOMS.publicTest), 1, 'two rooms fit')
  t.equal(await read(RECORDED_ROOMS.privateAdmin), 403, 'a third room')
  t.equal(await read(RECORDED_ROOMS.publicTest), 200)
  t.equal(reads(RECORDED_ROOMS.publicTest), 2, 'the oldest was dropped and read again')
})
