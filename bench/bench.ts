/**
 * `npm run bench`: the gateway against a bare Fastify + undici proxy making the same upstream
 * calls (bench/baseline.mjs), side by side in one run on this machine, each in its own process,
 * against the simulated homeserver in a third. Prints a table and writes bench/results/latest.json.
 *
 * BENCH_SECONDS (per measurement, default 4), BENCH_ROUNDS (alternations, default 3),
 * BENCH_CPU_PROF=1 (writes a --cpu-prof profile of the HS256 gateway to bench/results/).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { Pool, request } from 'undici'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const seconds = Number(process.env.BENCH_SECONDS ?? 4)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const workDir = mkdtempSync(join(tmpdir(), 'gateway-bench-'))
const ADMIN_TOKEN = 'syt_bench_admin_token'
const SECRET = randomBytes(32).toString('base64url')
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const room = RECORDED_ROOMS.publicTest
const path = `/v1/rooms/${encodeURIComponent(room)}/members`
const body = JSON.stringify({ user_id: '@alice:test.local' })
const children: ChildProcess[] = []

async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

async function waitForHealth (url: string, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url} exited`)
    try {
      const res = await request(`${url}/healthz`)
      await res.body.dump()
      if (res.statusCode === 200) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

interface Target { name: string, url: string, pid: number, startupMs: number }

async function startNode (name: string, args: string[], env: Record<string, string>, viaTsx = false): Promise<Target> {
  const port = await freePort()
  const started = performance.now()
  const child = spawn(process.execPath, viaTsx ? ['--import', 'tsx', ...args] : args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  children.push(child)
  const url = `http://127.0.0.1:${port}`
  await waitForHealth(url, child)
  return { name, url, pid: child.pid as number, startupMs: performance.now() - started }
}

async function startHomeserver (delayMs: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/homeserver.ts', String(delayMs)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  return await new Promise((resolve) => child.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())))
}

function gatewayEnv (synapseUrl: string, jwt: Record<string, string>, tag: string): Record<string, string> {
  return {
    SYNAPSE_URL: synapseUrl,
    SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN,
    SYNAPSE_SERVER_NAME: 'test.local',
    AUDIT_LOG_FILE: join(workDir, `audit-${tag}.log`),
    // One client address and one caller send everything: the limits must not be what is measured.
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
    SYNAPSE_MAX_CONCURRENCY: '128',
    ...jwt
  }
}

const TICKS_PER_SECOND = 100
function cpuMicros (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) * (1e6 / TICKS_PER_SECOND)
}
function rssMiB (pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  return Number(kb) / 1024
}

interface Measurement { target: string, connections: number, rps: number, p50: number, p99: number, cpuUsPerRequest: number, peakRssMiB: number, errors: number, non2xx: number }

async function measure (target: Target, connections: number, token: string | (() => string)): Promise<Measurement> {
  const cpuBefore = cpuMicros(target.pid)
  let peak = rssMiB(target.pid)
  const sampler = setInterval(() => { peak = Math.max(peak, rssMiB(target.pid)) }, 50)
  const result = await autocannon({
    url: target.url,
    connections,
    duration: seconds,
    requests: [{
      method: 'POST',
      path,
      body,
      headers: { 'content-type': 'application/json', authorization: typeof token === 'string' ? `Bearer ${token}` : '' },
      ...(typeof token === 'function' ? { setupRequest: (req: autocannon.Request) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${token()}` } }) } : {})
    }]
  })
  clearInterval(sampler)
  const cpu = cpuMicros(target.pid) - cpuBefore
  return {
    target: target.name,
    connections,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUsPerRequest: Math.round(cpu / Math.max(1, result.requests.total)),
    peakRssMiB: Math.round(peak * 10) / 10,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx
  }
}

/** A closed loop of `concurrency` workers for `seconds`; returns each call's latency in ms. */
async function closedLoop (concurrency: number, call: () => Promise<void>): Promise<number[]> {
  const latencies: number[] = []
  const until = performance.now() + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      const started = performance.now()
      await call()
      latencies.push(performance.now() - started)
    }
  }))
  return latencies.sort((a, b) => a - b)
}
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0
const round1 = (n: number) => Math.round(n * 10) / 10
const round2 = (n: number) => Number(n.toFixed(2))
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0

try {
  const synapseUrl = await startHomeserver(0)
  const hsToken = signJwt({ alg: 'HS256' }, helpdeskClaims({}, 3600), SECRET)
  const rsToken = signJwt({ alg: 'RS256' }, helpdeskClaims({}, 3600), rsa.privateKey)
  const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const baseline = await startNode('baseline', ['bench/baseline.mjs'], { SYNAPSE_URL: synapseUrl, SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN })
  const profile = process.env.BENCH_CPU_PROF === '1' ? ['--cpu-prof', '--cpu-prof-dir', join(root, 'bench/results')] : []
  const hs256 = await startNode('gateway HS256', [...profile, 'dist/server.js'], gatewayEnv(synapseUrl, { JWT_SECRET: SECRET }, 'hs'))
  const rs256 = await startNode('gateway RS256', ['dist/server.js'], gatewayEnv(synapseUrl, { JWT_PUBLIC_KEY: pem }, 'rs'))
  const tokens: Record<string, string> = { baseline: '', 'gateway HS256': hsToken, 'gateway RS256': rsToken }

  // Warm up the JIT and the connection pools, then let the gateway settle for its idle RSS.
  for (const target of [baseline, hs256, rs256]) {
    await autocannon({ url: target.url, connections: 10, duration: 1, requests: [{ method: 'POST', path, body, headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[target.name] ?? ''}` } }] })
  }
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const idleRssMiB = round1(rssMiB(hs256.pid))

  const runs: Measurement[] = []
  for (const connections of [10, 100]) {
    for (let i = 0; i < rounds; i++) {
      for (const target of [baseline, hs256, rs256]) runs.push(await measure(target, connections, tokens[target.name] ?? ''))
    }
  }

  // Junk tokens, each different (a repeated one could be cached), against valid requests.
  const [header, payload] = hsToken.split('.') as [string, string]
  const junk = () => `${header}.${payload}.${randomBytes(32).toString('base64url')}`
  const rejections = await measure(hs256, 100, junk)

  // Latency added over calling a homeserver that takes 20 ms directly (lookup, then join).
  const slowSynapse = await startHomeserver(20)
  const slowGateway = await startNode('gateway HS256 (20 ms homeserver)', ['dist/server.js'], gatewayEnv(slowSynapse, { JWT_SECRET: SECRET }, 'slow'))
  const direct = new Pool(slowSynapse, { connections: 10 })
  const viaGateway = new Pool(slowGateway.url, { connections: 10 })
  const directCall = async () => {
    const lookup = await direct.request({ method: 'GET', path: `/_synapse/admin/v2/users/${encodeURIComponent('@alice:test.local')}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    await lookup.body.json()
    const joined = await direct.request({ method: 'POST', path: `/_synapse/admin/v1/join/${encodeURIComponent(room)}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body })
    await joined.body.json()
  }
  const gatewayCall = async () => {
    const res = await viaGateway.request({ method: 'POST', path, headers: { authorization: `Bearer ${hsToken}`, 'content-type': 'application/json' }, body })
    await res.body.json()
  }
  await closedLoop(10, gatewayCall) // warm-up
  const directLatencies = await closedLoop(10, directCall)
  const gatewayLatencies = await closedLoop(10, gatewayCall)
  await direct.close()
  await viaGateway.close()

  // Summaries: medians over the alternating rounds.
  const summary = (name: string, connections: number) => {
    const own = runs.filter((run) => run.target === name && run.connections === connections)
    return {
      rps: Math.round(median(own.map((run) => run.rps))),
      p50: median(own.map((run) => run.p50)),
      p99: median(own.map((run) => run.p99)),
      cpuUsPerRequest: median(own.map((run) => run.cpuUsPerRequest)),
      peakRssMiB: Math.max(...own.map((run) => run.peakRssMiB)),
      errors: own.reduce((sum, run) => sum + run.errors, 0),
      non2xx: own.reduce((sum, run) => sum + run.non2xx, 0)
    }
  }
  const table: Array<Record<string, string | number>> = []
  const ratios: Record<string, number> = {}
  for (const connections of [10, 100]) {
    const base = summary('baseline', connections)
    table.push({ target: 'baseline', connections, ...base })
    for (const name of ['gateway HS256', 'gateway RS256']) {
      const own = summary(name, connections)
      const ratio = round2(own.rps / base.rps)
      ratios[`${name} @${connections}`] = ratio
      table.push({ target: name, connections, ...own, 'rps ÷ baseline': ratio, 'cpu ÷ baseline': round2(own.cpuUsPerRequest / base.cpuUsPerRequest) })
    }
  }
  const validRps = summary('gateway HS256', 100).rps
  const peakUnderLoad = Math.max(...runs.filter((run) => run.target.startsWith('gateway')).map((run) => run.peakRssMiB))
  const report = {
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    settings: { seconds_per_measurement: seconds, rounds },
    table,
    budgets: {
      'throughput @100, HS256 (≥ 0.75× baseline)': ratios['gateway HS256 @100'],
      'throughput @100, RS256 (≥ 0.75× baseline)': ratios['gateway RS256 @100'],
      'invalid-token rejections ÷ valid requests (≥ 1.5)': round2(rejections.rps / validRps),
      'added p50 latency, ms, 20 ms homeserver @10 (≤ 1)': round1(percentile(gatewayLatencies, 0.5) - percentile(directLatencies, 0.5)),
      'added p99 latency, ms, 20 ms homeserver @10 (≤ 3)': round1(percentile(gatewayLatencies, 0.99) - percentile(directLatencies, 0.99)),
      'idle RSS, MiB (≤ 90)': idleRssMiB,
      'peak RSS under load ÷ idle (≤ 1.3)': round2(peakUnderLoad / idleRssMiB),
      'start-up to listening, ms (≤ 1000)': Math.round(hs256.startupMs)
    },
    details: {
      rejections: { rps: Math.round(rejections.rps), p99: rejections.p99, cpuUsPerRequest: rejections.cpuUsPerRequest, non2xx: rejections.non2xx },
      latency_20ms_homeserver: {
        direct: { p50: round1(percentile(directLatencies, 0.5)), p99: round1(percentile(directLatencies, 0.99)), calls: directLatencies.length },
        gateway: { p50: round1(percentile(gatewayLatencies, 0.5)), p99: round1(percentile(gatewayLatencies, 0.99)), calls: gatewayLatencies.length }
      },
      startup_ms: { baseline: Math.round(baseline.startupMs), 'gateway HS256': Math.round(hs256.startupMs), 'gateway RS256': Math.round(rs256.startupMs) }
    }
  }
  console.table(table)
  console.table(report.budgets)
  process.stdout.write(`${JSON.stringify(report.details, null, 2)}\n`)
  mkdirSync(join(root, 'bench/results'), { recursive: true })
  writeFileSync(join(root, 'bench/results/latest.json'), `${JSON.stringify(report, null, 2)}\n`)
  process.stdout.write('written to bench/results/latest.json\n')
} finally {
  for (const child of children) child.kill('SIGTERM')
}
