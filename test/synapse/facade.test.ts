/**
 * The tracked Synapse façade actions get instead of the client: every call is declared (name,
 * method, whether it changes anything); a changing call leaves only after its intent record is
 * on disk; PUT and DELETE are sent as declared; a call may carry its own timeout.
 */
import { createServer, type IncomingMessage } from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { newAttempt } from '../../src/actions/attempt.js'
import { createContexts } from '../../src/actions/facade.js'
import { createAuditLog } from '../../src/audit/log.js'
import { loadConfig } from '../../src/config.js'
import { createMetrics } from '../../src/metrics.js'
import { changingCall, createSynapseClient, readCall } from '../../src/synapse/client.js'
import { createRoomDirectory } from '../../src/synapse/rooms.js'

interface Seen { method: string, url: string, body: string, intentsOnDisk: number }

/** A stand-in for Synapse that notes what it got and how many intent records were on disk when it did. */
async function fakeSynapse (t: Test, auditFile: string, delayMs = 0) {
  const seen: Seen[] = []
  const server = createServer((request: IncomingMessage, response) => {
    let body = ''
    request.on('data', (chunk: Buffer) => { body += chunk.toString() })
    request.on('end', () => {
      let intents = 0
      try { intents = readFileSync(auditFile, 'utf8').split('\n').filter((line) => line.includes('"event":"intent"')).length } catch {}
      seen.push({ method: request.method ?? '', url: request.url ?? '', body, intentsOnDisk: intents })
      setTimeout(() => {
        response.writeHead(200, { 'content-type': 'application/json' })
        response.end('{}')
      }, delayMs)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

async function facade (t: Test, options: { delayMs?: number, timeoutMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'facade-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const auditFile = join(dir, 'audit.log')
  const synapseServer = await fakeSynapse(t, auditFile, options.delayMs)
  const config = loadConfig({
    SYNAPSE_URL: synapseServer.url,
    SYNAPSE_ADMIN_TOKEN: 'unused',
    SYNAPSE_SERVER_NAME: 'test.local',
    JWT_SECRET: 'unused-unused-unused-unused-unused-00',
    AUDIT_LOG_FILE: auditFile,
    SYNAPSE_TIMEOUT_MS: String(options.timeoutMs ?? 10_000)
  })
  const log = pino({ level: 'silent' })
  const synapse = createSynapseClient({ url: config.synapse.url, adminToken: 'unused', timeoutMs: config.synapse.timeoutMs, maxConcurrency: 4 })
  t.after(async () => { await synapse.close() })
  const audit = createAuditLog({ file: auditFile, log })
  const contextFor = createContexts({ config, synapse, rooms: createRoomDirectory(), audit, metrics: createMetrics(), adminUserId: async () => '@admin:test.local' })
  const attempt = newAttempt('user.lock')
  attempt.actor = { sub: 'helpdesk-bot', org: null, roles: [], claims: {} }
  return { context: contextFor(attempt, 'req-1', log, {}), attempt, seen: synapseServer.seen }
}

t.test('a changing call is sent only after its intent record is on disk, once per attempt', async (t) => {
  const { context, attempt, seen } = await facade(t)
  await context.synapse.lookupUser('@alice:test.local')
  t.equal(seen[0]?.intentsOnDisk, 0, 'a read needs no intent')
  t.notOk(attempt.intentWritten)
  await context.synapse.send(changingCall('user_lock', 'PUT', '/_synapse/admin/v2/users/%40alice%3Atest.local', { locked: true }))
  t.equal(seen[1]?.intentsOnDisk, 1, 'the intent was on disk when the changing call arrived')
  await context.synapse.send(changingCall('user_unlock', 'PUT', '/_synapse/admin/v2/users/%40alice%3Atest.local', { locked: false }))
  t.equal(seen[2]?.intentsOnDisk, 1, 'one intent per attempt')
  t.match(attempt.upstream, { call: 'user_unlock', status: 200 })
})

t.test('PUT and DELETE are sent as declared, with and without a body', async (t) => {
  const { context, seen } = await facade(t)
  await context.synapse.send(changingCall('suspend', 'PUT', '/_synapse/admin/v1/suspend/%40bob%3Atest.local', { suspend: true }))
  await context.synapse.send(changingCall('forget', 'DELETE', '/_synapse/admin/v1/example/%40bob%3Atest.local'))
  await context.synapse.send(readCall('devices', '/_synapse/admin/v2/users/%40bob%3Atest.local/devices'))
  t.same(seen.map(({ method, url, body }) => [method, url, body]), [
    ['PUT', '/_synapse/admin/v1/suspend/%40bob%3Atest.local', '{"suspend":true}'],
    ['DELETE', '/_synapse/admin/v1/example/%40bob%3Atest.local', ''],
    ['GET', '/_synapse/admin/v2/users/%40bob%3Atest.local/devices', '']
  ])
})

t.test('a call declared with its own timeout outlasts SYNAPSE_TIMEOUT_MS; others do not', async (t) => {
  const slow = await facade(t, { delayMs: 400, timeoutMs: 150 })
  const timedOut = await slow.context.synapse.send(changingCall('deactivate', 'POST', '/_synapse/admin/v1/deactivate/%40carol%3Atest.local', { erase: false })).catch((error: unknown) => error)
  t.match(timedOut, { problem: 'upstream_timeout' }, 'within SYNAPSE_TIMEOUT_MS: timed out')
  const patient = await facade(t, { delayMs: 400, timeoutMs: 150 })
  const response = await patient.context.synapse.send(changingCall('deactivate', 'POST', '/_synapse/admin/v1/deactivate/%40carol%3Atest.local', { erase: false }, { timeoutMs: 5000 }))
  t.equal(response.status, 200, 'its own timeout: answered')
})
