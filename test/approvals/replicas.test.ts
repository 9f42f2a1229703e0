/**
 * Two real gateway processes on one redis-server and one simulated homeserver: a request held
 * on one is seen and decided on the other, and two security leads approving at the same moment,
 * one on each process, run the action once at the homeserver: one gets the action's answer, the
 * other 409 approval_decided. Each process's audit file verifies.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { ACTION_ROOMS } from '../../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../../dev/tokens.js'
import { verifyAuditFiles } from '../../src/audit/verify.js'
import { ADMIN_TOKEN, JWT_SECRET } from '../helpers/harness.js'
import { send } from '../helpers/http.js'
import { collect, exited, listening, spawnServer } from '../helpers/process.js'
import { skipWithoutRedis, startRedisServer } from '../helpers/redis.js'

const ROOM = ACTION_ROOMS.kickPublic
const skip = skipWithoutRedis('the two-process approval race against a real Redis')
const POLICY = `rules:
  - name: security-leads
    roles: [security-lead]
    actions: [room.promote]
  - name: helpdesk-promotes-after-approval
    roles: [helpdesk]
    actions: [room.promote]
    approval: {roles: [security-lead], count: 1}
`
const token = (sub: string, roles: string[]) => signJwt({ alg: 'HS256' }, helpdeskClaims({ sub, roles }), JWT_SECRET)

async function gatewayProcess (t: Test, env: Record<string, string>): Promise<string> {
  const child = spawnServer({ PORT: '0', SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN, SYNAPSE_SERVER_NAME: 'test.local', JWT_SECRET, ...env })
  const out = collect(child)
  t.after(async () => {
    child.kill('SIGTERM')
    await exited(child)
  })
  return await listening(child, out)
}

t.test('two gateway processes, two approvers at the same moment: the action runs once', { skip }, async (t) => {
  const redis = await startRedisServer(t)
  const homeserver = new SimulatedHomeserver({ adminToken: ADMIN_TOKEN, fixture: 'actions' })
  const homeserverUrl = await homeserver.listen()
  const dir = mkdtempSync(join(tmpdir(), 'approvals-replicas-'))
  t.after(async () => {
    await homeserver.close()
    rmSync(dir, { recursive: true, force: true })
  })
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  const shared = { REDIS_URL: redis.url, POLICY_FILE: join(dir, 'policy.yaml'), SYNAPSE_URL: homeserverUrl }
  const [a, b] = await Promise.all([
    gatewayProcess(t, { ...shared, AUDIT_LOG_FILE: join(dir, 'a.log') }),
    gatewayProcess(t, { ...shared, AUDIT_LOG_FILE: join(dir, 'b.log') })
  ])
  const helpdesk = token('helpdesk-bot', ['helpdesk'])
  const leads = [token('lead-1', ['security-lead']), token('lead-2', ['security-lead'])]
  // The make_room_admin call takes a while: the second approver decides while the first one's action still runs.
  homeserver.fault = { kind: 'slow', on: 'make_room_admin', delayMs: 150 }

  for (const [round, user] of ['@vic:test.local', '@xena:test.local', '@zed:test.local'].entries()) {
    const held = await send(a, 'POST', `/v1/rooms/${encodeURIComponent(ROOM)}/admins`, { token: helpdesk, body: { user_id: user } })
    t.equal(held.status, 202, `round ${round}: held on A`)
    const id = held.body.approval.id as string
    t.equal((await send(b, 'GET', `/v1/approvals/${id}`, { token: leads[1] })).body.approval.status, 'pending', `round ${round}: B sees it`)

    const before = homeserver.callsTo('make_room_admin').length
    const answers = await Promise.all([
      send(a, 'POST', `/v1/approvals/${id}/approve`, { token: leads[0] }),
      send(b, 'POST', `/v1/approvals/${id}/approve`, { token: leads[1] })
    ])
    t.equal(homeserver.callsTo('make_room_admin').length - before, 1, `round ${round}: one make_room_admin at the homeserver`)
    const [ran, other] = [...answers].sort((x, y) => x.status - y.status)
    t.equal(ran?.status, 200, `round ${round}: one approver gets the action's answer`)
    t.same(ran?.body, { room_id: ROOM, user_id: user, power_level: 100 })
    t.equal(other?.status, 409, `round ${round}: the other is refused`)
    t.equal(other?.body.code, 'approval_decided')
  }

  for (const name of ['a.log', 'b.log']) {
    const report = verifyAuditFiles([{ name, text: readFileSync(join(dir, name), 'utf8') }])
    t.ok(report.intact, `${name}: audit:verify accepts it`)
    t.same(report.openIntents, [], `${name}: every intent has its result`)
  }
  const records = ['a.log', 'b.log'].flatMap((name) => readFileSync(join(dir, name), 'utf8').split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, any>))
  t.equal(records.filter((record) => record.event === 'intent' && record.approval !== undefined).length, 3, 'three intents, each with its approval')
  t.equal(records.filter((record) => record.outcome === 'approval_approved' && record.complete === true).length, 3, 'one completing approval per round')
  t.equal(records.filter((record) => record.outcome === 'approval_refused' && record.code === 'approval_decided').length, 3, 'and one refused')
})
