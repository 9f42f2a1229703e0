/**
 * `npm run soak` (SOAK_SECONDS, default 60): the gateway under steady mixed load against the
 * simulated homeserver on loopback. Reports errors, RSS and open handles at start and end, and
 * checks that the audit log has exactly one line per action request sent. Exits 1 on a mismatch.
 */
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { SimulatedHomeserver } from '../dev/homeserver/server.js'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'

const seconds = Number(process.env.SOAK_SECONDS ?? 60)
const secret = 'soak-secret-soak-secret-soak-secret-0123'
const auditFile = join(mkdtempSync(join(tmpdir(), 'gateway-soak-')), 'audit.log')

// Requests are not kept: RSS then speaks of the gateway, not of the simulator's call log.
const homeserver = new SimulatedHomeserver({ recordCalls: false })
const homeserverUrl = await homeserver.listen()
const app = await buildApp(loadConfig({
  SYNAPSE_URL: homeserverUrl,
  SYNAPSE_ADMIN_TOKEN: homeserver.adminToken,
  SYNAPSE_SERVER_NAME: 'test.local',
  JWT_SECRET: secret,
  AUDIT_LOG_FILE: auditFile,
  RATE_LIMIT_PER_MINUTE: '1000000',
  RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
  LOG_LEVEL: 'warn'
}))
const url = await app.listen({ host: '127.0.0.1', port: 0 })

const snapshot = () => ({
  rss_mib: Math.round(process.memoryUsage().rss / 1048576 * 10) / 10,
  handles: process.getActiveResourcesInfo().length
})
const token = signJwt({ alg: 'HS256' }, helpdeskClaims({}, 24 * 3600), secret)
const path = `/v1/rooms/${encodeURIComponent(RECORDED_ROOMS.publicTest)}/members`
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }

const requests: autocannon.Request[] = [
  { method: 'POST', path, headers, body: JSON.stringify({ user_id: '@alice:test.local' }) },
  { method: 'POST', path, headers, body: JSON.stringify({ user_id: '@dave:test.local' }) },
  { method: 'POST', path, headers: { ...headers, authorization: 'Bearer not.a.token' }, body: '{}' },
  { method: 'POST', path, headers, body: '{"user_id": 42}' }
]
const countAuditLines = () => readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).length

// A short run measures the rate and warms up; it is not counted.
const warmup = await autocannon({ url, connections: 20, duration: 2, requests })
await new Promise((resolve) => setTimeout(resolve, 200))
const start = snapshot()
const linesBefore = countAuditLines()
// Batches of a fixed size (about 5 s each) until the time is up: each batch ends only when
// every request it sent was answered.
const batch = Math.max(100, Math.round(warmup.requests.average * 5))
const began = performance.now()
const totals = { sent: 0, responses: 0, errors: 0, timeouts: 0, non2xx: 0, p99: 0 }
while ((performance.now() - began) / 1000 < seconds) {
  const result = await autocannon({ url, connections: 20, amount: batch, requests })
  totals.sent += result.requests.sent
  totals.responses += result.requests.total
  totals.errors += result.errors
  totals.timeouts += result.timeouts
  totals.non2xx += result.non2xx
  totals.p99 = Math.max(totals.p99, result.latency.p99)
}
const elapsedS = (performance.now() - began) / 1000
await app.close()
await homeserver.close()
const end = snapshot()

const auditLines = countAuditLines() - linesBefore
const report = {
  seconds: Math.round(elapsedS),
  requests_sent: totals.sent,
  responses: totals.responses,
  requests_per_s: Math.round(totals.responses / elapsedS),
  worst_batch_latency_p99_ms: totals.p99,
  errors: totals.errors,
  timeouts: totals.timeouts,
  non_2xx: totals.non2xx,
  // RSS is this whole process: gateway, simulated homeserver and load generator together.
  start,
  end,
  audit_lines: auditLines,
  audit_matches_requests: auditLines === totals.sent
}
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
process.exitCode = report.audit_matches_requests && totals.errors === 0 && totals.timeouts === 0 ? 0 : 1
