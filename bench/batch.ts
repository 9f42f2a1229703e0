/**
 * `npm run bench:batch`: one POST /v1/batch of 100 joins against 100 single join requests (one
 * after another, 4 in flight like BATCH_CONCURRENCY, and all 100 at once), each against the
 * simulated homeserver answering every call after BENCH_HOMESERVER_DELAY_MS (default 20): wall
 * time and calls the homeserver received. Gateway and homeserver run in this process, on
 * loopback sockets. BENCH_ROUNDS (default 5): the median is printed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { SimulatedHomeserver } from '../dev/homeserver/server.js'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'

const ITEMS = 100
const delayMs = Number(process.env.BENCH_HOMESERVER_DELAY_MS ?? 20)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const ADMIN_TOKEN = 'syt_bench_admin_token'
const SECRET = 'bench-secret-bench-secret-bench-secret-0123'
const room = RECORDED_ROOMS.publicTest
const dir = mkdtempSync(join(tmpdir(), 'bench-batch-'))

const homeserver = new SimulatedHomeserver({ adminToken: ADMIN_TOKEN })
const synapseUrl = await homeserver.listen()
if (delayMs > 0) homeserver.fault = { kind: 'slow', delayMs }
const app = await buildApp(loadConfig({
  SYNAPSE_URL: synapseUrl,
  SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN,
  SYNAPSE_SERVER_NAME: 'test.local',
  JWT_SECRET: SECRET,
  AUDIT_LOG_FILE: join(dir, 'audit.log'),
  LOG_LEVEL: 'warn',
  RATE_LIMIT_PER_MINUTE: '1000000',
  RATE_LIMIT_PER_IP_PER_MINUTE: '10000000'
}))
const url = await app.listen({ host: '127.0.0.1', port: 0 })
const pool = new Pool(url, { connections: 128 })
const authorization = `Bearer ${signJwt({ alg: 'HS256' }, helpdeskClaims({}, 3600), SECRET)}`

let generation = 0
/** New users for every run, so every join really joins someone. */
function freshUsers (): string[] {
  generation++
  const template = homeserver.state.users.get('@alice:test.local')
  if (template === undefined) throw new Error('the fixture has no alice')
  return Array.from({ length: ITEMS }, (_, i) => {
    const id = `@b${generation}u${i}:test.local`
    homeserver.state.users.set(id, { ...template, devices: [] })
    return id
  })
}

async function single (user: string): Promise<number> {
  const response = await pool.request({ method: 'POST', path: `/v1/rooms/${encodeURIComponent(room)}/members`, headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ user_id: user }) })
  await response.body.dump()
  return response.statusCode
}

async function inParallel (users: string[], concurrency: number): Promise<number[]> {
  const statuses: number[] = []
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < users.length) statuses.push(await single(users[next++] as string))
  }))
  return statuses
}

const ways: Record<string, (users: string[]) => Promise<number[]>> = {
  '100 single requests, one after another': async (users) => await inParallel(users, 1),
  '100 single requests, 4 in flight': async (users) => await inParallel(users, 4),
  '100 single requests, all at once': async (users) => await inParallel(users, ITEMS),
  'one batch of 100 (BATCH_CONCURRENCY 4)': async (users) => {
    const response = await pool.request({ method: 'POST', path: '/v1/batch', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ items: users.map((user) => ({ action: 'room.join', room, user_id: user })) }) })
    const answer = await response.body.json() as { results: Array<{ status: number }> }
    return answer.results.map((result) => result.status)
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
try {
  await ways['100 single requests, 4 in flight']?.(freshUsers()) // warm-up
  const table: Array<Record<string, string | number>> = []
  for (const [name, run] of Object.entries(ways)) {
    const times: number[] = []
    let calls = 0
    let ok = 0
    for (let round = 0; round < rounds; round++) {
      const users = freshUsers()
      const callsBefore = homeserver.calls.length
      const started = performance.now()
      const statuses = await run(users)
      times.push(performance.now() - started)
      calls = homeserver.calls.length - callsBefore
      ok = statuses.filter((status) => status === 200).length
    }
    table.push({ way: name, 'wall ms (median)': Math.round(median(times)), 'homeserver calls': calls, 'joins 200': ok })
  }
  process.stdout.write(`homeserver delay ${delayMs} ms a call, ${rounds} rounds each, median\n`)
  console.table(table)
} finally {
  await pool.close()
  await app.close()
  await homeserver.close()
  rmSync(dir, { recursive: true, force: true })
}
