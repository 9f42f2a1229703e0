/**
 * `npm run bench:inprocess`: the gateway's own CPU per join, without the network and without
 * the other processes that make `npm run bench` noisy on a shared machine. The app is built in
 * this process (one per variant, every feature on, then one feature taken out at a time),
 * driven with app.inject, and Synapse's answers come from an undici MockAgent primed with what
 * the simulated homeserver answers. process.cpuUsage() around a fixed number of joins, the
 * variants alternating for BENCH_ROUNDS rounds (default 5), medians reported.
 * INPROCESS_JOINS per measurement (default 4000), INPROCESS_CONCURRENCY (default 20).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { MockAgent, request } from 'undici'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { SimulatedHomeserver } from '../dev/homeserver/server.js'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const joins = Number(process.env.INPROCESS_JOINS ?? 4000)
const concurrency = Number(process.env.INPROCESS_CONCURRENCY ?? 20)
const workDir = mkdtempSync(join(tmpdir(), 'gateway-inprocess-'))
const secret = randomBytes(32).toString('base64url')
const room = RECORDED_ROOMS.publicTest
const user = '@alice:test.local'
const token = signJwt({ alg: 'HS256' }, helpdeskClaims({ roles: ['helpdesk'], department: 'support' }, 3600), secret)
const origin = 'http://synapse.invalid'

// What the simulated homeserver answers to every call a join makes under the ten-rule policy.
const homeserver = new SimulatedHomeserver({ recordCalls: false })
const homeserverUrl = await homeserver.listen(0)
const auth = { authorization: `Bearer ${homeserver.adminToken}` }
async function answerOf (method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number, json: unknown }> {
  const res = await request(`${homeserverUrl}${path}`, { method, headers: { ...auth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  return { status: res.statusCode, json: await res.body.json() }
}
const enc = encodeURIComponent
const directory = await answerOf('GET', `/_matrix/client/v3/directory/room/${enc('#support:test.local')}`)
const spaceId = (directory.json as { room_id: string }).room_id
const answers: Array<{ method: 'GET' | 'POST', path: string, answer: { status: number, json: unknown } }> = [
  { method: 'GET', path: `/_synapse/admin/v2/users/${enc(user)}`, answer: await answerOf('GET', `/_synapse/admin/v2/users/${enc(user)}`) },
  { method: 'POST', path: `/_synapse/admin/v1/join/${enc(room)}`, answer: await answerOf('POST', `/_synapse/admin/v1/join/${enc(room)}`, { user_id: user }) },
  { method: 'GET', path: `/_synapse/admin/v1/rooms/${enc(room)}`, answer: await answerOf('GET', `/_synapse/admin/v1/rooms/${enc(room)}`) },
  { method: 'GET', path: `/_matrix/client/v3/directory/room/${enc('#support:test.local')}`, answer: directory },
  { method: 'GET', path: `/_synapse/admin/v1/rooms/${enc(room)}/state?type=m.room.canonical_alias`, answer: await answerOf('GET', `/_synapse/admin/v1/rooms/${enc(room)}/state?type=m.room.canonical_alias`) },
  // The space's children only, as the gateway asks since Synapse 1.163 filters state by type.
  { method: 'GET', path: `/_synapse/admin/v1/rooms/${enc(spaceId)}/state?type=m.space.child`, answer: await answerOf('GET', `/_synapse/admin/v1/rooms/${enc(spaceId)}/state?type=m.space.child`) }
]
await homeserver.close()

function mockSynapse (): MockAgent {
  const agent = new MockAgent()
  agent.disableNetConnect()
  const pool = agent.get(origin)
  for (const { method, path, answer } of answers) {
    pool.intercept({ method, path }).reply(answer.status, answer.json as object, { headers: { 'content-type': 'application/json' } }).persist()
  }
  return agent
}

const variants: Array<{ name: string, env: Record<string, string | undefined>, idempotencyKey?: boolean }> = [
  { name: 'every feature on', env: {} },
  { name: 'Idempotency-Key sent', env: {}, idempotencyKey: true },
  { name: 'audit to /dev/null', env: { AUDIT_LOG_FILE: '/dev/null' } },
  { name: 'implicit policy', env: { POLICY_FILE: undefined, JOIN_ROLES: 'helpdesk' } },
  { name: 'access log off (LOG_LEVEL=warn)', env: { LOG_LEVEL: 'warn' } },
  { name: 'all three out', env: { AUDIT_LOG_FILE: '/dev/null', POLICY_FILE: undefined, JOIN_ROLES: 'helpdesk', LOG_LEVEL: 'warn' } }
]

async function appFor (variant: typeof variants[number], index: number) {
  const env: Record<string, string | undefined> = {
    SYNAPSE_URL: origin,
    SYNAPSE_ADMIN_TOKEN: homeserver.adminToken,
    SYNAPSE_SERVER_NAME: 'test.local',
    SYNAPSE_MAX_CONCURRENCY: '128',
    JWT_SECRET: secret,
    POLICY_FILE: join(root, 'bench/policy-ten-rules.yaml'),
    AUDIT_LOG_FILE: join(workDir, `audit-${index}.log`),
    LOG_LEVEL: 'info',
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
    ...variant.env
  }
  const config = loadConfig(Object.fromEntries(Object.entries(env).filter((entry) => entry[1] !== undefined)))
  // As in production: JSON lines through an asynchronous pino destination, here to a file.
  return await buildApp(config, { synapseDispatcher: mockSynapse(), logDestination: pino.destination({ dest: join(workDir, `service-${index}.log`), sync: false }) })
}

const path = `/v1/rooms/${enc(room)}/members`
const payload = JSON.stringify({ user_id: user })
type App = Awaited<ReturnType<typeof buildApp>>
async function drive (app: App, count: number, idempotencyKey: boolean): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < count) {
      const res = await app.inject({
        method: 'POST',
        url: path,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(idempotencyKey ? { 'idempotency-key': randomUUID() } : {}) },
        payload
      })
      if (res.statusCode !== 200) throw new Error(`join answered ${res.statusCode}: ${res.body}`)
    }
  }))
}

const apps = await Promise.all(variants.map(async (variant, index) => await appFor(variant, index)))
for (const [index, app] of apps.entries()) await drive(app, 2000, variants[index]?.idempotencyKey === true)
const samples = variants.map((): number[] => [])
for (let round = 0; round < rounds; round++) {
  for (const [index, app] of apps.entries()) {
    const before = process.cpuUsage()
    await drive(app, joins, variants[index]?.idempotencyKey === true)
    const used = process.cpuUsage(before)
    samples[index]?.push((used.user + used.system) / joins)
  }
}
await Promise.all(apps.map(async (app) => { await app.close() }))

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
const full = median(samples[0] ?? [])
const rows = variants.map((variant, index) => {
  const us = median(samples[index] ?? [])
  return { variant: variant.name, 'CPU µs/join': Math.round(us), 'Δ µs': index === 0 ? '' : Math.round(us - full), spread: `${Math.round(Math.min(...(samples[index] ?? [])))}–${Math.round(Math.max(...(samples[index] ?? [])))}` }
})
console.table(rows)
process.stdout.write(`| gateway (in process, app.inject, Synapse mocked) | CPU µs/join | Δ µs | spread over ${rounds} rounds |\n| --- | --- | --- | --- |\n`)
for (const row of rows) process.stdout.write(`| ${row.variant} | ${row['CPU µs/join']} | ${row['Δ µs']} | ${row.spread} |\n`)
