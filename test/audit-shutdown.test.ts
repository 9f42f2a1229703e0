/**
 * The audit through the real process's end of life: SIGTERM while a join waits on the
 * homeserver (finished, timed out, or outlived by the grace period: every attempt gets its
 * result, then the `stop` record), a configuration whose Synapse deadline does not fit in the
 * grace period refused, and SIGKILL at random moments under load, several times on one file.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Agent, request } from 'undici'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { startHarness } from './helpers/harness.js'
import { runServer } from './helpers/process.js'
import { seededRandom } from './helpers/random.js'
import { act, forRequest, joinPath, recordsOf, startGateway, until, verifyCli } from './helpers/audit.js'

const room = RECORDED_ROOMS.publicTest
const alice = '@alice:test.local'

function auditFileIn (t: { after: (fn: () => unknown) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-audit-shutdown-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  return join(dir, 'audit.log')
}

t.test('SYNAPSE_TIMEOUT_MS not shorter than SHUTDOWN_GRACE_MS is refused at start: exit 1, one line naming both', async (t) => {
  const h = await startHarness(t)
  for (const [timeout, grace] of [['5000', '5000'], ['8000', '5000']]) {
    const run = await runServer(h.serverEnv({ AUDIT_LOG_FILE: auditFileIn(t), SYNAPSE_TIMEOUT_MS: timeout as string, SHUTDOWN_GRACE_MS: grace as string }))
    t.equal(run.code, 1, `${timeout} / ${grace}`)
    const lines = run.stderr.split('\n').filter((line) => line !== '')
    t.equal(lines.length, 1, 'one line')
    t.match(lines[0], /SYNAPSE_TIMEOUT_MS/)
    t.match(lines[0], /SHUTDOWN_GRACE_MS/)
  }
})

t.test('SIGTERM while the homeserver holds a join that ends within the grace period: answered, audited, clean exit, stop record', async (t) => {
  const h = await startHarness(t)
  h.homeserver.fault = { kind: 'slow', on: 'join', delayMs: 800 }
  const file = auditFileIn(t)
  const g = await startGateway(t, h, { AUDIT_LOG_FILE: file, SYNAPSE_TIMEOUT_MS: '2500', SHUTDOWN_GRACE_MS: '4000' })
  const answer = act(g.url, 'POST', joinPath(room), { token: h.token(), requestId: 'term-slow', body: { user_id: alice } })
  await until(() => h.homeserver.callsTo('join').length === 1, 'the homeserver to receive the join')
  g.child.kill('SIGTERM')
  t.equal((await answer).status, 200, 'the join in flight finished')
  t.equal((await g.exited).code, 0)
  const records = recordsOf(file)
  t.same(records.map((record) => [record.event, record.request_id ?? null, record.outcome ?? null]), [
    ['start', null, null], ['intent', 'term-slow', null], ['result', 'term-slow', 'success'], ['stop', null, null]
  ])
  const verified = await verifyCli([file])
  t.equal(verified.code, 0, verified.stdout)
  t.notMatch(verified.stdout, /open intent/)
})

t.test('SIGTERM while the homeserver holds a join longer than the request may take: it times out at SYNAPSE_TIMEOUT_MS, unknown, before the grace ends', async (t) => {
  const h = await startHarness(t)
  // The homeserver would answer after 6 s: longer than the grace period (2.5 s), itself longer than the deadline (1 s).
  h.homeserver.fault = { kind: 'slow', on: 'join', delayMs: 6000 }
  const file = auditFileIn(t)
  const g = await startGateway(t, h, { AUDIT_LOG_FILE: file, SYNAPSE_TIMEOUT_MS: '1000', SHUTDOWN_GRACE_MS: '2500' })
  const answer = act(g.url, 'POST', joinPath(room), { token: h.token(), requestId: 'term-timeout', body: { user_id: alice } })
  await until(() => h.homeserver.callsTo('join').length === 1, 'the homeserver to receive the join')
  g.child.kill('SIGTERM')
  const res = await answer
  t.equal(res.status, 504)
  t.equal(res.body.code, 'upstream_timeout')
  t.equal((await g.exited).code, 0, 'a clean exit: nothing was left open')
  const records = recordsOf(file)
  t.match(forRequest(records, 'term-timeout'), [{ event: 'intent' }, { event: 'result', outcome: 'unknown', code: 'upstream_timeout', status: 504 }])
  t.equal(records.at(-1)?.event, 'stop')
  const verified = await verifyCli([file])
  t.equal(verified.code, 0, verified.stdout)
  t.notMatch(verified.stdout, /open intent/)
})

t.test('the grace period ends first (a body that arrives late, then a hang): the open attempt is audited unknown, then stop, before exit', async (t) => {
  const h = await startHarness(t)
  h.homeserver.fault = { kind: 'hang', on: 'join' }
  const file = auditFileIn(t)
  // The deadline (1.9 s) starts with the request's first Synapse call, which the late body delays
  // past the SIGTERM: the grace period (2 s from the SIGTERM) ends before the deadline does.
  const g = await startGateway(t, h, { AUDIT_LOG_FILE: file, SYNAPSE_TIMEOUT_MS: '1900', SHUTDOWN_GRACE_MS: '2000' })
  const { hostname, port } = new URL(g.url)
  const body = JSON.stringify({ user_id: alice })
  const socket = connect(Number(port), hostname)
  t.after(() => { socket.destroy() })
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString() })
  socket.on('error', () => {})
  socket.write(`POST ${joinPath(room)} HTTP/1.1\r\nHost: gateway\r\nX-Request-Id: late-body\r\nAuthorization: Bearer ${h.token()}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`)
  // 100 Continue: the gateway has taken the request in (its token checked) and waits for the body.
  await until(() => received.includes('100 Continue'), 'the gateway to ask for the body (100 Continue)')
  const signalled = Date.now()
  g.child.kill('SIGTERM')
  await until(() => g.out.stdout.includes('"msg":"shutting down"'), 'the gateway to start shutting down')
  await until(() => Date.now() - signalled >= 500, 'half a second of the grace period to pass')
  socket.write(body)
  await until(() => h.homeserver.callsTo('join').length === 1, 'the homeserver to receive the join')
  const { code } = await g.exited
  t.equal(code, 1, 'the grace period ran out: exit 1')
  t.notMatch(received, /HTTP\/1\.1 200/, 'no answer came')
  const records = recordsOf(file)
  t.match(forRequest(records, 'late-body'), [
    { event: 'intent', action: 'room.join', target: { user_id: alice } },
    { event: 'result', outcome: 'unknown', code: 'shutting_down', action: 'room.join', target: { user_id: alice } }
  ], 'the open attempt got its unknown result')
  t.equal(records.at(-1)?.event, 'stop', 'and the stop record closes the log')
  t.match(g.out.stdout, /"abandoned":1/)
  const verified = await verifyCli([file])
  t.equal(verified.code, 0, verified.stdout)
  t.notMatch(verified.stdout, /open intent/, 'the verifier lists no open intent')
})

/** Keeps `workers` joins going until stopped; the request IDs that got an answer, with their status. */
function load (url: string, token: string, workers: number, tag: string) {
  const answered = new Map<string, number>()
  const dispatcher = new Agent({ connections: workers })
  const state = { running: true }
  let sent = 0
  const loops = Array.from({ length: workers }, async () => {
    while (state.running) {
      const id = `${tag}-${sent++}`
      try {
        const res = await request(`${url}${joinPath(room)}`, {
          dispatcher,
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-request-id': id },
          body: JSON.stringify({ user_id: alice })
        })
        await res.body.dump()
        answered.set(id, res.statusCode)
      } catch {
        // Cut off by the kill: no answer, nothing owed.
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

t.test('SIGKILL at random moments under load, three times on one file: every received join has its intent, every answer its result, the chain holds', async (t) => {
  const h = await startHarness(t, { homeserver: { recordCalls: true } })
  // A short hold on each join, so that kills land while joins are in flight.
  h.homeserver.fault = { kind: 'slow', on: 'join', delayMs: 5 }
  const file = auditFileIn(t)
  const answered = new Map<string, number>()
  const random = seededRandom(t)
  let fragmentLine = 0
  for (let round = 1; round <= 3; round++) {
    const g = await startGateway(t, h, { AUDIT_LOG_FILE: file })
    const traffic = load(g.url, h.token(), 12, `kill${round}`)
    await until(() => traffic.answered.size > 20, `more than 20 answers in round ${round}`)
    await new Promise((resolve) => setTimeout(resolve, random() * 300))
    g.child.kill('SIGKILL')
    await g.exited
    await traffic.stop()
    for (const [id, status] of traffic.answered) answered.set(id, status)
    if (round === 1) {
      // What a kill in the middle of a write leaves: the start of a record and no newline.
      fragmentLine = recordsOf(file).length + 1
      appendFileSync(file, '{"seq":999999,"time":"2030-01-01T00:00:00.000Z","event":"intent","log":"au')
    }
  }

  const records = recordsOf(file)
  const results = new Map(records.filter((record) => record.event === 'result').map((record) => [record.request_id as string, record.status as number]))
  const intents = records.filter((record) => record.event === 'intent')
  const missing = [...answered].filter(([id, status]) => results.get(id) !== status).map(([id]) => id)
  t.same(missing, [], `all ${answered.size} answered requests have their result, with the answered status`)
  const joinsReceived = h.homeserver.callsTo('join').length
  t.ok(joinsReceived <= intents.length, `${joinsReceived} joins received, ${intents.length} intents written`)
  t.equal(records.filter((record) => record.event === 'start').length, 3, 'one start per run')

  const verified = await verifyCli([file])
  const problems = verified.lines.filter((line) => /^\S+:\d+: /.test(line))
  t.same(problems.map((line) => line.replace(/^.*:(\d+): (\w+):.*$/, '$2 at $1')), [`fragment at ${fragmentLine}`], 'the only problem is the cut line')
  t.equal(verified.code, 1, 'a fragment is a problem to look at')
  t.notMatch(verified.stdout, /new chain/, 'each restart continued the chain')
  const listedOpen = verified.lines.filter((line) => line.startsWith('open intent: ')).map((line) => /request_id "([^"]+)"/.exec(line)?.[1])
  const openIds = intents.map((record) => record.request_id as string).filter((id) => !results.has(id))
  t.same(listedOpen.sort(), openIds.sort(), 'the verifier lists exactly the intents without a result')
  t.ok(listedOpen.every((id) => id !== undefined && !answered.has(id)), 'and none of them was answered')
  // The record written after the cut starts on a line of its own.
  const lines = readFileSync(file, 'utf8').split('\n')
  t.match(lines[fragmentLine - 1], /"log":"au$/, 'the fragment stays as it was')
  t.match(lines[fragmentLine], /^\{"seq":\d+,"time":"[^"]+","event":"start"/, 'the next run\'s start is on the next line')
})
