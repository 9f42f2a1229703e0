/**
 * `npm run bench`: the version-2 gateway with every feature on (bench/policy-ten-rules.yaml, the
 * write-ahead audit to a real file, the access log, metrics) against a bare Fastify + undici
 * proxy making the same upstream calls (bench/baseline.mjs), side by side in one run, each in
 * its own process, against the simulated homeserver in another. Phases:
 *
 *   throughput  joins at 100 connections, gateway and proxy (both must answer only 2xx)
 *   features    the gateway with one feature taken out at a time: CPU µs per join
 *   actions     a read (GET …/members) and a removal (DELETE …/members/{userId}) beside the join
 *   redis       the gateway with REDIS_URL (a redis-server started here) and without
 *   junk        random-signature tokens against valid joins
 *   latency     a homeserver that takes 20 ms: gateway, proxy and direct calls at 1 and 10 connections
 *   flood       refused batches with fresh Idempotency-Keys: RSS and audit growth (bench/flood.ts, FLOOD_SECONDS)
 *   bigrooms    members read, a policy-checked join and a join dry run on the 5,000-member room
 *               beside the same on a small room (bench/big-rooms.ts)
 *
 * Every measurement of a phase is repeated BENCH_ROUNDS times (default 3), alternating the
 * targets, and the medians are reported. BENCH_SECONDS per measurement (default 3),
 * BENCH_PHASES=throughput,features,… to run some phases only, BENCH_CPU_PROF=1 to write a
 * --cpu-prof profile of the full gateway to bench/results/ (summarise it with
 * `npx tsx bench/profile-top.ts bench/results/<file>.cpuprofile`).
 * Prints the tables and writes bench/results/latest.json and latest.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { Pool, request } from 'undici'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'
import { floodPhase } from './flood.js'
import { freePort } from './free-port.js'
import { BIG_ROOM_CONCURRENCY, BIG_ROOM_LOADS, BIG_ROOMS_POLICY } from './big-rooms.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const seconds = Number(process.env.BENCH_SECONDS ?? 3)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const phases = new Set((process.env.BENCH_PHASES ?? 'throughput,features,actions,redis,junk,latency,bigrooms,flood').split(','))
const profiling = process.env.BENCH_CPU_PROF === '1'
const workDir = mkdtempSync(join(tmpdir(), 'gateway-bench-'))
const ADMIN_TOKEN = 'syt_bench_admin_token'
const SECRET = randomBytes(32).toString('base64url')
/** Enough slots towards the homeserver for every connection: what is measured is answers, not refusals. */
const UPSTREAM_SLOTS = 128
/** Node flags that cap V8's young generation (4 MiB semi-spaces instead of up to 16): less memory, more garbage collection. */
const MEMORY_SAVING_FLAGS = ['--max-semi-space-size=4']
/** Long enough for V8's memory reducer, which starts 8 s after the last allocation burst. */
const IDLE_SETTLE_MS = 12_000
const room = RECORDED_ROOMS.publicTest
const user = '@alice:test.local'
const children: ChildProcess[] = []

// ---------------------------------------------------------------------------------------------
// Processes

async function waitForHealth (url: string, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url} exited with ${child.exitCode}`)
    try {
      const res = await request(`${url}/healthz`)
      await res.body.dump()
      if (res.statusCode === 200) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

interface Target { name: string, url: string, pid: number, startupMs: number, idleRssMiB: number }

/** Starts `node args…`; its standard output (the gateway's service and access log) goes to a file. */
async function startNode (name: string, args: string[], env: Record<string, string>): Promise<Target> {
  const port = await freePort()
  const out = openSync(join(workDir, `${name.replace(/[^a-z0-9]+/gi, '-')}.out`), 'a')
  const started = performance.now()
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', out, 'inherit']
  })
  children.push(child)
  const url = `http://127.0.0.1:${port}`
  await waitForHealth(url, child)
  const startupMs = performance.now() - started
  return { name, url, pid: child.pid as number, startupMs, idleRssMiB: rssMiB(child.pid as number) }
}

async function startHomeserver (delayMs: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/homeserver.ts', String(delayMs)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  return await new Promise((resolve) => child.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())))
}

async function answersPing (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
    socket.once('data', (chunk) => { socket.destroy(); resolve(chunk.toString().startsWith('+PONG')) })
    socket.once('error', () => resolve(false))
  })
}

async function startRedis (): Promise<string | undefined> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return undefined
  const port = await freePort()
  const dir = mkdtempSync(join(workDir, 'redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  children.push(child)
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) return undefined
    if (await answersPing(port)) return `redis://127.0.0.1:${port}`
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return undefined
}

/** The gateway as in production, every feature on; `overrides` take one out (undefined: unset). */
function gatewayEnv (synapseUrl: string, tag: string, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    SYNAPSE_URL: synapseUrl,
    SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN,
    SYNAPSE_SERVER_NAME: 'test.local',
    SYNAPSE_MAX_CONCURRENCY: String(UPSTREAM_SLOTS),
    JWT_SECRET: SECRET,
    POLICY_FILE: join(root, 'bench/policy-ten-rules.yaml'),
    AUDIT_LOG_FILE: join(workDir, `audit-${tag}.log`),
    LOG_LEVEL: 'info',
    METRICS_ENABLED: 'true',
    // One client address and one caller send everything: the limits count but never refuse.
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
    ...overrides
  }
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))
}

/** The Node flags `npm start` gives the gateway (package.json), so that it is measured as it runs in production. */
const START_FLAGS = ((): string[] => {
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
  const match = /^node((?: --[\w-]+(?:=\S+)?)*) dist\/server\.js$/.exec(start)
  if (match === null) throw new Error(`package.json's start script is not "node [--flag…] dist/server.js": ${start}`)
  return (match[1] as string).split(' ').filter((flag) => flag !== '')
})()
const startGateway = async (name: string, synapseUrl: string, overrides: Record<string, string | undefined> = {}, extraArgs: string[] = []) =>
  await startNode(name, [...START_FLAGS, ...extraArgs, 'dist/server.js'], gatewayEnv(synapseUrl, name.replace(/[^a-z0-9]+/gi, '-'), overrides))
async function stop (target: Target): Promise<void> {
  const child = children.find((candidate) => candidate.pid === target.pid)
  if (child === undefined || child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}
const startBaseline = async (synapseUrl: string) =>
  await startNode('proxy', ['bench/baseline.mjs'], { SYNAPSE_URL: synapseUrl, SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN, BASELINE_POOL: String(UPSTREAM_SLOTS) })

// ---------------------------------------------------------------------------------------------
// Measuring

const TICKS_PER_SECOND = 100
function cpuMicros (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) * (1e6 / TICKS_PER_SECOND)
}
function rssMiB (pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  return Number(kb) / 1024
}

/** What one load sends: a request, made fresh per request when `fresh` is given. */
interface Load {
  name: string
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  body?: string
  token: string
  /** Extra headers per request (a new Idempotency-Key, a junk token). */
  fresh?: () => Record<string, string>
}

const hsToken = signJwt({ alg: 'HS256' }, helpdeskClaims({ roles: ['helpdesk'], department: 'support' }, 3600), SECRET)
const membersPath = `/v1/rooms/${encodeURIComponent(room)}/members`
const LOADS = {
  join: { name: 'join', method: 'POST', path: membersPath, body: JSON.stringify({ user_id: user }), token: hsToken },
  joinWithKey: { name: 'join + Idempotency-Key', method: 'POST', path: membersPath, body: JSON.stringify({ user_id: user }), token: hsToken, fresh: () => ({ 'idempotency-key': randomUUID() }) },
  read: { name: 'members read', method: 'GET', path: membersPath, token: hsToken },
  // The user is not in the room after the first removal: Synapse refuses the kick and the room's
  // details are read to tell "not a member" from "no such room" (answer 200, changed: false).
  remove: { name: 'removal', method: 'DELETE', path: `${membersPath}/${encodeURIComponent(user)}`, token: hsToken },
  junk: {
    name: 'junk token',
    method: 'POST',
    path: membersPath,
    body: JSON.stringify({ user_id: user }),
    token: hsToken,
    // Each different (a repeated one could be cached): the real header and payload, a random signature.
    fresh: () => ({ authorization: `Bearer ${hsToken.split('.').slice(0, 2).join('.')}.${randomBytes(32).toString('base64url')}` })
  }
} satisfies Record<string, Load>

function headersOf (load: Load): Record<string, string> {
  return { authorization: `Bearer ${load.token}`, ...(load.body === undefined ? {} : { 'content-type': 'application/json' }) }
}

interface Measurement { target: string, load: string, connections: number, rps: number, p50: number, p99: number, cpuUsPerRequest: number, peakRssMiB: number, errors: number, non2xx: number }

async function measure (target: Target, load: Load, connections: number, duration = seconds): Promise<Measurement> {
  const cpuBefore = cpuMicros(target.pid)
  let peak = rssMiB(target.pid)
  const sampler = setInterval(() => { peak = Math.max(peak, rssMiB(target.pid)) }, 50)
  const fresh = load.fresh
  const result = await autocannon({
    url: target.url,
    connections,
    duration,
    requests: [{
      method: load.method,
      path: load.path,
      headers: headersOf(load),
      ...(load.body === undefined ? {} : { body: load.body }),
      ...(fresh === undefined ? {} : { setupRequest: (req: autocannon.Request) => ({ ...req, headers: { ...req.headers, ...fresh() } }) })
    }]
  })
  clearInterval(sampler)
  const cpu = cpuMicros(target.pid) - cpuBefore
  return {
    target: target.name,
    load: load.name,
    connections,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUsPerRequest: Math.round(cpu / Math.max(1, result.requests.total)),
    peakRssMiB: round1(peak),
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx
  }
}

/** One request through `target`, to check the setup answers as intended before measuring it. */
async function expectAnswer (target: Target, load: Load, status: number, check: (body: Record<string, unknown>) => boolean): Promise<void> {
  const res = await request(`${target.url}${load.path}`, { method: load.method, headers: { ...headersOf(load), ...load.fresh?.() }, ...(load.body === undefined ? {} : { body: load.body }) })
  const text = await res.body.text()
  let body: Record<string, unknown> = {}
  try { body = JSON.parse(text) as Record<string, unknown> } catch {}
  if (res.statusCode !== status || !check(body)) throw new Error(`${target.name} ${load.name}: expected ${status}, got ${res.statusCode} ${text.slice(0, 300)}`)
}

/** `rounds` times every (target, load) pair in turn; the medians per pair. */
async function alternate (pairs: Array<[Target, Load]>, connections: number): Promise<Map<string, Summary>> {
  const runs: Measurement[] = []
  for (let i = 0; i < rounds; i++) {
    for (const [target, load] of pairs) runs.push(await measure(target, load, connections))
  }
  const summaries = new Map<string, Summary>()
  for (const [target, load] of pairs) summaries.set(key(target, load), summarise(runs.filter((run) => run.target === target.name && run.load === load.name)))
  return summaries
}
const key = (target: Target, load: Load) => `${target.name} / ${load.name}`

interface Summary { rps: number, p50: number, p99: number, cpuUsPerRequest: number, peakRssMiB: number, errors: number, non2xx: number, runs: number[] }
function summarise (own: Measurement[]): Summary {
  return {
    rps: Math.round(median(own.map((run) => run.rps))),
    p50: median(own.map((run) => run.p50)),
    p99: median(own.map((run) => run.p99)),
    cpuUsPerRequest: median(own.map((run) => run.cpuUsPerRequest)),
    peakRssMiB: Math.max(...own.map((run) => run.peakRssMiB)),
    errors: own.reduce((sum, run) => sum + run.errors, 0),
    non2xx: own.reduce((sum, run) => sum + run.non2xx, 0),
    runs: own.map((run) => Math.round(run.rps))
  }
}

/** A closed loop of `concurrency` workers for `seconds`; returns each call's latency in ms, sorted. */
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
const log = (line: string) => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)} load ${loadavg()[0]?.toFixed(1)}] ${line}\n`) }

async function warmUp (target: Target, load: Load) {
  await measure(target, load, 10, 1)
}

// ---------------------------------------------------------------------------------------------
// The run

const report: Record<string, unknown> = {
  machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, load_average_at_start: loadavg().map(round1) },
  settings: { seconds_per_measurement: seconds, rounds, upstream_slots: UPSTREAM_SLOTS, command: 'npm run bench' }
}
const budgets: Record<string, string | number> = {}
const markdown: string[] = []
const table = (head: string[], rows: Array<Array<string | number>>) => {
  markdown.push(`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((row) => `| ${row.join(' | ')} |`), '')
}

try {
  log(`work directory ${workDir}`)
  const synapseUrl = await startHomeserver(0)
  const proxy = await startBaseline(synapseUrl)
  // First and alone, for its time to listening (the median of three starts) and its idle RSS.
  const startups: number[] = []
  for (let i = 0; i < 2; i++) {
    const trial = await startGateway(`gateway start ${i + 1}`, synapseUrl)
    startups.push(trial.startupMs)
    await stop(trial)
  }
  const full = await startGateway('gateway', synapseUrl, {}, profiling ? ['--cpu-prof', '--cpu-prof-dir', join(root, 'bench/results')] : [])
  startups.push(full.startupMs)
  const startupMs = median(startups)
  // Idempotency keys are kept for IDEMPOTENCY_TTL_S: a gateway of their own, so they do not count in the peak RSS of joins.
  const keyed = await startGateway('gateway, Idempotency-Key', synapseUrl)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const idleAtStart = round1(rssMiB(full.pid))
  // A second after start the heap still holds what starting made (schemas compiled, the OpenAPI
  // document, the policy); V8's memory reducer collects it after 8 s without load. A gateway that
  // sits idle is measured after that.
  await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_MS - 1000))
  const idleSettled = round1(rssMiB(full.pid))
  await expectAnswer(full, LOADS.join, 200, (body) => body.room_id === room)
  await expectAnswer(proxy, LOADS.join, 200, (body) => body.room_id === room)
  await warmUp(proxy, LOADS.join)
  await warmUp(full, LOADS.join)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const idleAfterWarmUp = round1(rssMiB(full.pid))
  const peaks: number[] = []

  if (phases.has('throughput')) {
    log('throughput: joins at 100 connections')
    // Beside it, the same gateway with a young generation capped (MEMORY_SAVING_FLAGS): what an
    // operator short of memory would save, and what it costs.
    const capped = await startGateway('gateway, young generation capped', synapseUrl, {}, MEMORY_SAVING_FLAGS)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const cappedIdle = round1(rssMiB(capped.pid))
    await expectAnswer(capped, LOADS.join, 200, (body) => body.room_id === room)
    await warmUp(capped, LOADS.join)
    const results = await alternate([[proxy, LOADS.join], [full, LOADS.join], [capped, LOADS.join]], 100)
    const base = results.get(key(proxy, LOADS.join)) as Summary
    const own = results.get(key(full, LOADS.join)) as Summary
    const cappedRun = results.get(key(capped, LOADS.join)) as Summary
    await stop(capped)
    peaks.push(own.peakRssMiB)
    report.throughput = { proxy: base, gateway: own, gateway_young_generation_capped: { ...cappedRun, flags: MEMORY_SAVING_FLAGS, idleRssMiB: cappedIdle } }
    budgets['throughput @100 ÷ proxy (≥ 0.75)'] = round2(own.rps / base.rps)
    budgets['non-2xx answers @100, gateway / proxy (0)'] = `${own.non2xx + own.errors} / ${base.non2xx + base.errors}`
    markdown.push('Joins at 100 connections:', '')
    table(['target', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'non-2xx', 'req/s ÷ proxy', 'CPU ÷ proxy'], [
      ['proxy', base.rps, base.p50, base.p99, base.cpuUsPerRequest, base.non2xx + base.errors, '', ''],
      ['gateway, every feature on', own.rps, own.p50, own.p99, own.cpuUsPerRequest, own.non2xx + own.errors, round2(own.rps / base.rps), round2(own.cpuUsPerRequest / base.cpuUsPerRequest)],
      [`the same with ${MEMORY_SAVING_FLAGS.join(' ')}`, cappedRun.rps, cappedRun.p50, cappedRun.p99, cappedRun.cpuUsPerRequest, cappedRun.non2xx + cappedRun.errors, round2(cappedRun.rps / base.rps), round2(cappedRun.cpuUsPerRequest / base.cpuUsPerRequest)]
    ])
    markdown.push(`With \`${MEMORY_SAVING_FLAGS.join(' ')}\` the gateway holds ${cappedIdle} MiB a second after start and peaks at ${cappedRun.peakRssMiB} MiB under this load (without: the figures under Memory below).`, '')
  }

  if (phases.has('features')) {
    log('features: one taken out at a time')
    const variants: Array<{ name: string, overrides: Record<string, string | undefined>, load?: Load }> = [
      { name: 'audit to /dev/null', overrides: { AUDIT_LOG_FILE: '/dev/null' } },
      { name: 'implicit policy (no POLICY_FILE)', overrides: { POLICY_FILE: undefined, JOIN_ROLES: 'helpdesk' } },
      { name: 'access log off (LOG_LEVEL=warn)', overrides: { LOG_LEVEL: 'warn' } },
      { name: 'metrics route off (METRICS_ENABLED=false)', overrides: { METRICS_ENABLED: 'false' } },
      { name: 'all four out', overrides: { AUDIT_LOG_FILE: '/dev/null', POLICY_FILE: undefined, JOIN_ROLES: 'helpdesk', LOG_LEVEL: 'warn', METRICS_ENABLED: 'false' } }
    ]
    const started: Array<[Target, Load]> = [[full, LOADS.join], [keyed, LOADS.joinWithKey]]
    for (const variant of variants) {
      const target = await startGateway(`gateway, ${variant.name}`, synapseUrl, variant.overrides)
      await expectAnswer(target, LOADS.join, 200, (body) => body.room_id === room)
      await warmUp(target, LOADS.join)
      started.push([target, LOADS.join])
    }
    await expectAnswer(keyed, LOADS.joinWithKey, 200, (body) => body.room_id === room)
    await warmUp(keyed, LOADS.joinWithKey)
    const results = await alternate(started, 100)
    const base = results.get(key(full, LOADS.join)) as Summary
    peaks.push(base.peakRssMiB)
    const rows = started.map(([target, load]) => {
      const own = results.get(key(target, load)) as Summary
      const label = load === LOADS.joinWithKey ? 'Idempotency-Key sent (a new one per request; in memory)' : target === full ? 'every feature on' : target.name.replace('gateway, ', '')
      return { label, ...own, delta: own.cpuUsPerRequest - base.cpuUsPerRequest }
    })
    report.features = rows
    markdown.push('The gateway with one feature taken out at a time (joins at 100 connections; the difference in CPU per join is that feature\'s cost):', '')
    table(['gateway', 'req/s', 'CPU µs/req', 'Δ CPU µs/req', 'non-2xx'], rows.map((row) => [row.label, row.rps, row.cpuUsPerRequest, row.label === 'every feature on' ? '' : (row.delta > 0 ? `+${row.delta}` : row.delta), row.non2xx + row.errors]))
  }

  if (phases.has('actions')) {
    log('actions: read and removal beside the join')
    await expectAnswer(full, LOADS.read, 200, (body) => Array.isArray(body.members))
    await expectAnswer(full, LOADS.remove, 200, (body) => typeof body.changed === 'boolean')
    await expectAnswer(full, LOADS.remove, 200, (body) => body.changed === false)
    await expectAnswer(proxy, LOADS.remove, 200, (body) => body.changed === false)
    const loads = [LOADS.join, LOADS.read, LOADS.remove]
    const results = await alternate(loads.flatMap((load): Array<[Target, Load]> => [[proxy, load], [full, load]]), 100)
    const rows = loads.map((load) => {
      const base = results.get(key(proxy, load)) as Summary
      const own = results.get(key(full, load)) as Summary
      peaks.push(own.peakRssMiB)
      return { action: load.name, proxy: base, gateway: own, ratio: round2(own.rps / base.rps) }
    })
    report.actions = rows
    markdown.push('Actions side by side at 100 connections (the removal is of a user no longer in the room: kick refused, room details read, 200 with `changed: false`):', '')
    table(['action', 'proxy req/s', 'gateway req/s', 'gateway ÷ proxy', 'proxy CPU µs/req', 'gateway CPU µs/req', 'non-2xx (gateway)'], rows.map((row) =>
      [row.action, row.proxy.rps, row.gateway.rps, row.ratio, row.proxy.cpuUsPerRequest, row.gateway.cpuUsPerRequest, row.gateway.non2xx + row.gateway.errors]))
  }

  if (phases.has('redis')) {
    const redisUrl = await startRedis()
    if (redisUrl === undefined) {
      log('redis: skipped, no redis-server on PATH')
      report.redis = 'skipped: no redis-server on PATH'
      markdown.push('REDIS_URL: skipped (no `redis-server` on this machine).', '')
    } else {
      log(`redis: ${redisUrl}`)
      const shared = await startGateway('gateway, REDIS_URL', synapseUrl, { REDIS_URL: redisUrl })
      await expectAnswer(shared, LOADS.join, 200, (body) => body.room_id === room)
      await warmUp(shared, LOADS.join)
      const pairs: Array<[Target, Load]> = [[full, LOADS.join], [shared, LOADS.join], [keyed, LOADS.joinWithKey], [shared, LOADS.joinWithKey]]
      const results = await alternate(pairs, 100)
      const rows = pairs.map(([target, load]) => ({ gateway: target.name, load: load.name, ...(results.get(key(target, load)) as Summary) }))
      report.redis = rows
      markdown.push('Limits (and idempotency keys) in memory or shared through Redis (joins at 100 connections):', '')
      table(['gateway', 'request', 'req/s', 'p99 ms', 'CPU µs/req', 'non-2xx'], rows.map((row) => [row.gateway, row.load, row.rps, row.p99, row.cpuUsPerRequest, row.non2xx + row.errors]))
    }
  }

  if (phases.has('junk')) {
    log('junk tokens')
    // Valid joins measured again beside the junk, alternating, so the ratio comes from one stretch of time.
    const results = await alternate([[full, LOADS.join], [full, LOADS.junk]], 100)
    const valid = results.get(key(full, LOADS.join)) as Summary
    const junk = results.get(key(full, LOADS.junk)) as Summary
    report.junk = { junk, valid }
    budgets['junk-token rejections ÷ valid joins (≥ 1.5)'] = round2(junk.rps / valid.rps)
    markdown.push(`Junk tokens (random signatures) at 100 connections: ${junk.rps} refusals/s (all 401), ${junk.cpuUsPerRequest} µs CPU each, against ${valid.rps} valid joins/s (${valid.cpuUsPerRequest} µs CPU each) measured alternately with them.`, '')
  }

  if (phases.has('latency')) {
    log('latency: a homeserver that takes 20 ms')
    const slowSynapse = await startHomeserver(20)
    const slowGateway = await startGateway('gateway (20 ms homeserver)', slowSynapse)
    const slowProxy = await startNode('proxy (20 ms homeserver)', ['bench/baseline.mjs'], { SYNAPSE_URL: slowSynapse, SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN, BASELINE_POOL: String(UPSTREAM_SLOTS) })
    const rows: Array<Record<string, number | string>> = []
    for (const connections of [1, 10]) {
      const direct = new Pool(slowSynapse, { connections })
      const viaGateway = new Pool(slowGateway.url, { connections })
      const viaProxy = new Pool(slowProxy.url, { connections })
      const directCall = async () => {
        const lookup = await direct.request({ method: 'GET', path: `/_synapse/admin/v2/users/${encodeURIComponent(user)}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
        await lookup.body.json()
        const joined = await direct.request({ method: 'POST', path: `/_synapse/admin/v1/join/${encodeURIComponent(room)}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: LOADS.join.body })
        await joined.body.json()
      }
      const via = (pool: Pool) => async () => {
        const res = await pool.request({ method: 'POST', path: membersPath, headers: headersOf(LOADS.join), body: LOADS.join.body })
        if (res.statusCode !== 200) throw new Error(`latency phase: ${res.statusCode} ${await res.body.text()}`)
        await res.body.json()
      }
      const calls = { direct: directCall, proxy: via(viaProxy), gateway: via(viaGateway) }
      const samples: Record<string, number[][]> = { direct: [], proxy: [], gateway: [] }
      for (const call of Object.values(calls)) await closedLoop(connections, call) // warm-up
      for (let i = 0; i < rounds; i++) {
        for (const [name, call] of Object.entries(calls)) samples[name]?.push(await closedLoop(connections, call))
      }
      await Promise.all([direct.close(), viaGateway.close(), viaProxy.close()])
      const at = (name: string, p: number) => median((samples[name] ?? []).map((sorted) => percentile(sorted, p)))
      const row = {
        connections,
        'direct p50': round1(at('direct', 0.5)),
        'direct p99': round1(at('direct', 0.99)),
        'proxy p50': round1(at('proxy', 0.5)),
        'proxy p99': round1(at('proxy', 0.99)),
        'gateway p50': round1(at('gateway', 0.5)),
        'gateway p99': round1(at('gateway', 0.99)),
        'added over proxy p50': round1(at('gateway', 0.5) - at('proxy', 0.5)),
        'added over proxy p99': round1(at('gateway', 0.99) - at('proxy', 0.99)),
        'added over direct p50': round1(at('gateway', 0.5) - at('direct', 0.5)),
        'added over direct p99': round1(at('gateway', 0.99) - at('direct', 0.99))
      }
      rows.push(row)
      budgets[`added latency over proxy @${connections}, p50 / p99 ms (≤ 1 / ≤ 3)`] = `${row['added over proxy p50']} / ${row['added over proxy p99']}`
    }
    report.latency = rows
    markdown.push('Latency against a homeserver that takes 20 ms per call (a join is two calls: lookup, join), ms:', '')
    table(['connections', 'direct p50', 'direct p99', 'proxy p50', 'proxy p99', 'gateway p50', 'gateway p99', 'added over proxy p50 / p99', 'added over direct p50 / p99'], rows.map((row) =>
      [row.connections as number, row['direct p50'] as number, row['direct p99'] as number, row['proxy p50'] as number, row['proxy p99'] as number, row['gateway p50'] as number, row['gateway p99'] as number,
        `${row['added over proxy p50']} / ${row['added over proxy p99']}`, `${row['added over direct p50']} / ${row['added over direct p99']}`]))
  }

  if (phases.has('flood')) {
    const flood = await floodPhase({
      start: async (name, env) => await startGateway(name, synapseUrl, env),
      stop: async (target) => { await stop(target as Target) },
      sign: (claims) => signJwt({ alg: 'HS256' }, helpdeskClaims(claims, 3600), SECRET),
      rssMiB,
      auditFile: (name) => join(workDir, `audit-flood-${name}.log`),
      room,
      user,
      log
    })
    report.flood = flood.results
    Object.assign(budgets, flood.budgets)
    markdown.push(...flood.markdown)
  }

  if (phases.has('bigrooms')) {
    log('bigrooms: the 5,000-member room beside a small room')
    const policyFile = join(workDir, 'big-rooms-policy.yaml')
    writeFileSync(policyFile, BIG_ROOMS_POLICY)
    const target = await startGateway('gateway, big rooms', synapseUrl, { POLICY_FILE: policyFile })
    const loads = BIG_ROOM_LOADS.map((load): Load => ({ ...load, token: hsToken }))
    for (const load of loads) await expectAnswer(target, load, 200, () => true)
    // A closed loop per load (each answer awaited, whatever it takes): latency and the gateway's RSS.
    const pool = new Pool(target.url, { connections: BIG_ROOM_CONCURRENCY })
    const rows: Array<Record<string, string | number>> = []
    for (const load of loads) {
      const call = async () => {
        const res = await pool.request({ method: load.method, path: load.path, headers: headersOf(load), ...(load.body === undefined ? {} : { body: load.body }) })
        if (res.statusCode !== 200) throw new Error(`bigrooms phase: ${load.name} answered ${res.statusCode} ${await res.body.text()}`)
        await res.body.dump()
      }
      let peakRss = rssMiB(target.pid)
      const sampler = setInterval(() => { peakRss = Math.max(peakRss, rssMiB(target.pid)) }, 50)
      const cpuBefore = cpuMicros(target.pid)
      const latencies = await closedLoop(BIG_ROOM_CONCURRENCY, call)
      clearInterval(sampler)
      rows.push({ load: load.name, requests: latencies.length, 'p50 ms': round1(percentile(latencies, 0.5)), 'p99 ms': round1(percentile(latencies, 0.99)), 'CPU ms/req': round1((cpuMicros(target.pid) - cpuBefore) / 1000 / Math.max(1, latencies.length)), 'peak RSS MiB': round1(peakRss) })
    }
    await pool.close()
    peaks.push(...rows.map((row) => row['peak RSS MiB'] as number))
    report.big_rooms = rows
    markdown.push(`The 5,000-member room beside a small room, ${BIG_ROOM_CONCURRENCY} concurrent callers in a closed loop for ${seconds} s each (a policy with alias patterns, a space and \`when\`; room facts for decisions are cached up to 60 s, a dry run reads the state streamed each time):`, '')
    table(['load', 'requests', 'p50 ms', 'p99 ms', 'gateway CPU ms/req', 'gateway peak RSS MiB'], rows.map((row) =>
      [row.load as string, row.requests as number, row['p50 ms'] as number, row['p99 ms'] as number, row['CPU ms/req'] as number, row['peak RSS MiB'] as number]))
  }

  const peak = Math.max(idleAfterWarmUp, ...peaks)
  budgets[`idle RSS, ${IDLE_SETTLE_MS / 1000} s after start, MiB (≤ 90)`] = idleSettled
  budgets['peak RSS under load ÷ idle (≤ 1.3)'] = round2(peak / idleSettled)
  budgets['start to listening, ms, median of 3 (≤ 1000)'] = Math.round(startupMs)
  report.memory = { one_second_after_start_mib: idleAtStart, idle_mib: idleSettled, idle_after_warm_up_mib: idleAfterWarmUp, peak_under_load_mib: peak, proxy_idle_at_start_mib: round1(proxy.idleRssMiB) }
  report.startup_ms = { gateway: startups.map(Math.round), proxy: Math.round(proxy.startupMs) }
  report.budgets = budgets
  report.load_average_at_end = loadavg().map(round1)
  markdown.push(`Memory: ${idleAtStart} MiB a second after start (the proxy: ${round1(proxy.idleRssMiB)} MiB), idle ${idleSettled} MiB ${IDLE_SETTLE_MS / 1000} s after start, ${idleAfterWarmUp} MiB after warm-up, peak ${peak} MiB under load. Start to listening: ${Math.round(startupMs)} ms, median of ${startups.map(Math.round).join(', ')} (the proxy: ${Math.round(proxy.startupMs)} ms).`, '')
  markdown.push('Budgets:', '')
  table(['budget', 'measured'], Object.entries(budgets))

  console.table(budgets)
  process.stdout.write(`\n${markdown.join('\n')}\n`)
  mkdirSync(join(root, 'bench/results'), { recursive: true })
  writeFileSync(join(root, 'bench/results/latest.json'), `${JSON.stringify(report, null, 2)}\n`)
  writeFileSync(join(root, 'bench/results/latest.md'), `${markdown.join('\n')}\n`)
  process.stdout.write('written to bench/results/latest.json and latest.md\n')
} finally {
  // SIGTERM lets each gateway close gracefully (and write its --cpu-prof profile).
  await Promise.all(children.map(async (child) => {
    if (child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
  }))
}
