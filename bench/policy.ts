/**
 * What a ten-rule policy costs per request: the gateway with the implicit policy (no POLICY_FILE)
 * and the same gateway with bench/policy-ten-rules.yaml, each in its own process (dist/server.js),
 * in alternating rounds of the same run against the simulated homeserver in a third process, with
 * autocannon (POST join of @alice into #public-test by room ID, as `npm run bench`). Then
 * `policy.decide` alone, in this process, for the same request.
 *
 *   npm run build && npx tsx bench/policy.ts      (BENCH_SECONDS per measurement, default 5; BENCH_ROUNDS, default 3)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'
import { loadPolicyFile } from '../src/policy/index.js'
import { freePort } from './free-port.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const POLICY = join(root, 'bench/policy-ten-rules.yaml')
const ADMIN_TOKEN = 'syt_bench_admin_token'
const SECRET = randomBytes(32).toString('base64url')
const workDir = mkdtempSync(join(tmpdir(), 'gateway-bench-policy-'))
const path = `/v1/rooms/${encodeURIComponent(RECORDED_ROOMS.publicTest)}/members`
const body = JSON.stringify({ user_id: '@alice:test.local' })
const token = signJwt({ alg: 'HS256' }, helpdeskClaims({}, 3600), SECRET)
const children: ChildProcess[] = []

async function startGateway (name: string, synapseUrl: string, extra: Record<string, string>) {
  const port = await freePort()
  const child = spawn(process.execPath, ['dist/server.js'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      SYNAPSE_URL: synapseUrl,
      SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN,
      SYNAPSE_SERVER_NAME: 'test.local',
      JWT_SECRET: SECRET,
      AUDIT_LOG_FILE: join(workDir, `audit-${name}.log`),
      RATE_LIMIT_PER_MINUTE: '1000000',
      RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
      SYNAPSE_MAX_CONCURRENCY: '128',
      LOG_LEVEL: 'warn',
      ...extra
    },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  children.push(child)
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited`)
    if (i > 2000) throw new Error(`${name} did not answer /healthz within 10 s`)
    try {
      const res = await request(`${url}/healthz`)
      await res.body.dump()
      if (res.statusCode === 200) break
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  return { name, url, pid: child.pid as number }
}

function cpuMicros (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) * 1e4
}

async function measure (target: { name: string, url: string, pid: number }, connections: number, duration = seconds) {
  const cpuBefore = cpuMicros(target.pid)
  const result = await autocannon({ url: target.url, connections, duration, requests: [{ method: 'POST', path, body, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }] })
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${target.name}: ${result.non2xx} non-2xx, ${result.errors} errors (the policy must allow the benchmark's request)`)
  return { rps: result.requests.average, p99: result.latency.p99, cpuUs: (cpuMicros(target.pid) - cpuBefore) / Math.max(1, result.requests.total) }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0

try {
  const homeserver = spawn(process.execPath, ['--import', 'tsx', 'bench/homeserver.ts', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(homeserver)
  const synapseUrl = await new Promise<string>((resolve) => homeserver.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())))
  const targets = [
    await startGateway('implicit policy', synapseUrl, {}),
    await startGateway('ten-rule POLICY_FILE', synapseUrl, { POLICY_FILE: POLICY })
  ]
  for (const target of targets) await measure(target, 10, 2) // warm-up: JIT, pools, room facts cached

  const runs: Record<string, Array<{ rps: number, p99: number, cpuUs: number }>> = {}
  const table: Array<Record<string, string | number>> = []
  for (const connections of [10, 100]) {
    for (let i = 0; i < rounds; i++) {
      for (const target of targets) (runs[`${target.name} @${connections}`] ??= []).push(await measure(target, connections))
    }
    const [implicit, tenRules] = targets.map((target) => runs[`${target.name} @${connections}`] ?? [])
    for (const [name, own] of [['implicit policy', implicit], ['ten-rule POLICY_FILE', tenRules]] as const) {
      table.push({ target: name, connections, rps: Math.round(median(own?.map((run) => run.rps) ?? [])), p99: median(own?.map((run) => run.p99) ?? []), 'cpu µs/request': Math.round(median(own?.map((run) => run.cpuUs) ?? [])) })
    }
  }

  // policy.decide alone, for the benchmark's request with every room fact filled in.
  const policy = loadPolicyFile(POLICY)
  const decision = {
    caller: { sub: 'helpdesk-bot', org: 'example', roles: ['matrix-admin'], claims: helpdeskClaims({}, 3600) },
    action: 'room.join' as const,
    room: { id: RECORDED_ROOMS.publicTest, alias: null, canonical_alias: '#public-test:test.local', alt_aliases: [], spaces: ['space:#support:test.local'] },
    user: { id: '@alice:test.local' }
  }
  if (policy.decide(decision).rule !== 'admins-in-support') throw new Error('the ten-rule policy must allow the benchmark request by its last rule')
  const iterations = 200_000
  for (let i = 0; i < iterations; i++) policy.decide(decision)
  const started = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) policy.decide(decision)
  const nsPerDecide = Number(process.hrtime.bigint() - started) / iterations

  console.table(table)
  const at = (connections: number) => {
    const rps = (name: string) => median(runs[`${name} @${connections}`]?.map((run) => run.rps) ?? [])
    return Number((rps('ten-rule POLICY_FILE') / rps('implicit policy')).toFixed(3))
  }
  process.stdout.write(`${JSON.stringify({
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    settings: { seconds_per_measurement: seconds, rounds },
    'rps ten rules ÷ implicit': { '@10': at(10), '@100': at(100) },
    'policy.decide alone, µs per call': Number((nsPerDecide / 1000).toFixed(2))
  }, null, 2)}\n`)
} finally {
  for (const child of children) child.kill('SIGTERM')
}
