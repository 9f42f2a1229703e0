/**
 * `npm run bench:redis`: the cost of shared state. Two gateway processes (dist/server.js) against
 * the simulated homeserver (its own process): one without REDIS_URL (limits and idempotency
 * records in memory), one with REDIS_URL on a local redis-server started here (persisting
 * nothing). Measured side by side, alternating, with autocannon: plain joins (the two rate
 * limits: per address and per caller), and joins that each carry a new Idempotency-Key (plus a
 * claim and a complete). BENCH_SECONDS (default 4), BENCH_ROUNDS (default 3): medians printed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'
import { freePort } from './free-port.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const seconds = Number(process.env.BENCH_SECONDS ?? 4)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const dir = mkdtempSync(join(tmpdir(), 'bench-redis-'))
const ADMIN_TOKEN = 'syt_bench_admin_token'
const SECRET = randomBytes(32).toString('base64url')
const path = `/v1/rooms/${encodeURIComponent(RECORDED_ROOMS.publicTest)}/members`
const body = JSON.stringify({ user_id: '@alice:test.local' })
const children: ChildProcess[] = []

function start (command: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(command, args, { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  return child
}

async function waitFor (what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function startRedis (): Promise<string> {
  const port = await freePort()
  const child = start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'])
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  await waitFor('redis-server (is it installed? apt-get install redis-server)', async () => output.includes('Ready to accept connections'))
  return `redis://127.0.0.1:${port}`
}

async function startHomeserver (): Promise<string> {
  const child = start(process.execPath, ['--import', 'tsx', 'bench/homeserver.ts', '0'])
  return await new Promise((resolve) => child.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())))
}

interface Gateway { name: string, url: string }
async function startGateway (name: string, synapseUrl: string, extra: Record<string, string>): Promise<Gateway> {
  const port = await freePort()
  start(process.execPath, ['dist/server.js'], {
    HOST: '127.0.0.1',
    PORT: String(port),
    SYNAPSE_URL: synapseUrl,
    SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN,
    SYNAPSE_SERVER_NAME: 'test.local',
    JWT_SECRET: SECRET,
    AUDIT_LOG_FILE: join(dir, `audit-${port}.log`),
    LOG_LEVEL: 'warn',
    // One client and one caller send everything: the limits are counted, never reached.
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
    SYNAPSE_MAX_CONCURRENCY: '128',
    ...extra
  })
  const url = `http://127.0.0.1:${port}`
  await waitFor(`${name} to be healthy`, async () => {
    const response = await request(`${url}/healthz`)
    await response.body.dump()
    return response.statusCode === 200
  })
  return { name, url }
}

interface Run { gateway: string, load: string, connections: number, rps: number, p50: number, p99: number, non2xx: number, errors: number }

async function measure (gateway: Gateway, load: 'joins' | 'joins with a new Idempotency-Key each', connections: number, authorization: string, duration = seconds): Promise<Run> {
  const keyed = load !== 'joins'
  const result = await autocannon({
    url: gateway.url,
    connections,
    duration,
    requests: [{
      method: 'POST',
      path,
      body,
      headers: { 'content-type': 'application/json', authorization },
      ...(keyed ? { setupRequest: (req: autocannon.Request) => ({ ...req, headers: { ...req.headers, 'idempotency-key': randomUUID() } }) } : {})
    }]
  })
  return { gateway: gateway.name, load, connections, rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors + result.timeouts }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
try {
  const [redisUrl, synapseUrl] = await Promise.all([startRedis(), startHomeserver()])
  const memory = await startGateway('without REDIS_URL', synapseUrl, {})
  const shared = await startGateway('with REDIS_URL', synapseUrl, { REDIS_URL: redisUrl })
  const authorization = `Bearer ${signJwt({ alg: 'HS256' }, helpdeskClaims({}, 3600), SECRET)}`
  for (const gateway of [memory, shared]) await measure(gateway, 'joins', 10, authorization, 1) // warm-up

  const runs: Run[] = []
  for (const load of ['joins', 'joins with a new Idempotency-Key each'] as const) {
    for (const connections of [10, 100]) {
      for (let round = 0; round < rounds; round++) {
        for (const gateway of [memory, shared]) runs.push(await measure(gateway, load, connections, authorization))
      }
    }
  }
  const table: Array<Record<string, string | number>> = []
  for (const load of ['joins', 'joins with a new Idempotency-Key each']) {
    for (const connections of [10, 100]) {
      let base = 0
      for (const gateway of [memory.name, shared.name]) {
        const own = runs.filter((run) => run.gateway === gateway && run.load === load && run.connections === connections)
        const rps = Math.round(median(own.map((run) => run.rps)))
        if (gateway === memory.name) base = rps
        table.push({
          load,
          connections,
          gateway,
          'req/s': rps,
          'p50 ms': median(own.map((run) => run.p50)),
          'p99 ms': median(own.map((run) => run.p99)),
          '÷ without': Number((rps / base).toFixed(2)),
          'non-2xx': own.reduce((sum, run) => sum + run.non2xx, 0) + own.reduce((sum, run) => sum + run.errors, 0)
        })
      }
    }
  }
  process.stdout.write(`${cpus().length} cores, ${cpus()[0]?.model ?? ''}, node ${process.version}; ${seconds} s a measurement, ${rounds} alternating rounds, medians\n`)
  console.table(table)
} finally {
  for (const child of children) child.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
}
