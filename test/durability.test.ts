/**
 * Audit durability of the real server process under load: killed with SIGKILL at a random
 * moment, every request that got an answer has its audit line; stopped with SIGTERM, in-flight
 * requests finish, the process exits cleanly and nothing is lost.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { Agent, request } from 'undici'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { startHarness, type Harness } from './helpers/harness.js'
import { collect, exited, listening, spawnServer } from './helpers/process.js'
import { seededRandom } from './helpers/random.js'
import { waitFor } from './helpers/wait.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)

async function startServer (t: { after: (fn: () => unknown) => void }, h: Harness, auditFile: string) {
  const child = spawnServer(h.serverEnv({ AUDIT_LOG_FILE: auditFile, RATE_LIMIT_PER_MINUTE: '1000000', RATE_LIMIT_PER_IP_PER_MINUTE: '1000000' }))
  t.after(() => { child.kill('SIGKILL') })
  const out = collect(child)
  const url = await listening(child, out)
  return { child, url, out }
}

/** Keeps `workers` requests going until stopped; returns the request IDs that got an answer. */
function load (url: string, token: string, workers: number) {
  const answered = new Map<string, number>()
  const dispatcher = new Agent({ connections: workers })
  const state = { running: true }
  let sent = 0
  const loops = Array.from({ length: workers }, async (_, worker) => {
    while (state.running) {
      const id = `w${worker}-${sent++}`
      try {
        const res = await request(`${url}/v1/rooms/${room}/members`, {
          dispatcher,
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-request-id': id },
          body: JSON.stringify({ user_id: '@alice:test.local' })
        })
        await res.body.dump()
        answered.set(id, res.statusCode)
      } catch {
        // Refused or cut off: no answer was received, so nothing is owed.
      }
    }
  })
  return {
    answered,
    async stop () {
      state.running = false
      await Promise.all(loops)
      await dispatcher.close()
    }
  }
}

function intentCount (file: string): number {
  return readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('"event":"intent"')).length
}

function auditIds (file: string): Map<string, number> {
  const ids = new Map<string, number>()
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue
    const entry = JSON.parse(line) as { event: string, request_id: string, status: number }
    if (entry.event === 'result') ids.set(entry.request_id, entry.status)
  }
  return ids
}

t.test('SIGKILL at a random moment under load: every answered request has its audit line', async (t) => {
  const h = await startHarness(t)
  const auditFile = `${h.auditFile}.kill`
  const { child, url } = await startServer(t, h, auditFile)
  const random = seededRandom(t)
  const traffic = load(url, h.token(), 16)
  await waitFor(() => traffic.answered.size > 20, 'more than 20 answered requests before the kill')
  await new Promise((resolve) => setTimeout(resolve, random() * 700))
  child.kill('SIGKILL')
  await exited(child)
  await traffic.stop()
  const audited = auditIds(auditFile)
  t.ok(traffic.answered.size > 20, `${traffic.answered.size} requests answered before the kill`)
  const missing = [...traffic.answered.keys()].filter((id) => !audited.has(id))
  t.same(missing, [], 'no answered request lacks its audit line')
  for (const [id, status] of traffic.answered) {
    if (audited.get(id) !== status) t.fail(`${id}: answered ${status}, audited ${String(audited.get(id))}`)
  }
  // Write-ahead: every join that reached the homeserver has its intent on disk, answered or not.
  const intents = intentCount(auditFile)
  t.ok(h.homeserver.callsTo('join').length <= intents, `${h.homeserver.callsTo('join').length} joins received, ${intents} intents written`)
})

t.test('SIGTERM under load: in-flight requests finish, clean exit, nothing lost', async (t) => {
  const h = await startHarness(t)
  h.homeserver.fault = { kind: 'slow', delayMs: 20 }
  const auditFile = `${h.auditFile}.term`
  const { child, url, out } = await startServer(t, h, auditFile)
  const traffic = load(url, h.token(), 16)
  await waitFor(() => traffic.answered.size > 20, 'more than 20 answered requests before SIGTERM')
  child.kill('SIGTERM')
  const { code } = await exited(child)
  await traffic.stop()
  t.equal(code, 0, 'exited cleanly within the grace period')
  const audited = auditIds(auditFile)
  const statuses = new Set(traffic.answered.values())
  t.ok([...statuses].every((status) => status === 200 || status === 503), `answers were joins or 503: ${[...statuses].join(',')}`)
  t.same([...traffic.answered.keys()].filter((id) => !audited.has(id)), [], 'every answer is audited')
  t.ok([...audited.values()].every((status) => status === 200 || status === 503), 'no request was cut off half-way')
  t.notMatch(out.stderr, /Error/)
})
