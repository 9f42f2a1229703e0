/**
 * `npm run build && npx tsx bench/audit-cost.ts`: what the audit's two writes per join cost.
 * Two gateway processes in one run against one simulated homeserver, alike except for
 * AUDIT_LOG_FILE (a real file vs /dev/null), measured alternately with autocannon; then the
 * audit log alone (createAuditLog), µs per record to a file and to /dev/null.
 *
 * BENCH_SECONDS (per measurement, default 4), BENCH_ROUNDS (alternations, default 3),
 * BENCH_CONNECTIONS (default 100).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import pino from 'pino'
import { request } from 'undici'
import { createAuditLog } from '../src/audit/log.js'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'
import { freePort } from './free-port.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const seconds = Number(process.env.BENCH_SECONDS ?? 4)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 100)
const workDir = mkdtempSync(join(tmpdir(), 'gateway-audit-cost-'))
const SECRET = randomBytes(32).toString('base64url')
const path = `/v1/rooms/${encodeURIComponent(RECORDED_ROOMS.publicTest)}/members`
const body = JSON.stringify({ user_id: '@alice:test.local' })
const children: ChildProcess[] = []

async function startGateway (synapseUrl: string, auditFile: string): Promise<{ url: string, pid: number }> {
  const port = await freePort()
  const child = spawn(process.execPath, ['dist/server.js'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      SYNAPSE_URL: synapseUrl,
      SYNAPSE_ADMIN_TOKEN: 'syt_bench_admin_token',
      SYNAPSE_SERVER_NAME: 'test.local',
      JWT_SECRET: SECRET,
      AUDIT_LOG_FILE: auditFile,
      RATE_LIMIT_PER_MINUTE: '1000000',
      RATE_LIMIT_PER_IP_PER_MINUTE: '10000000',
      SYNAPSE_MAX_CONCURRENCY: '128'
    },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  children.push(child)
  const url = `http://127.0.0.1:${port}`
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway (${auditFile}) exited`)
    try {
      const res = await request(`${url}/healthz`)
      await res.body.dump()
      if (res.statusCode === 200) return { url, pid: child.pid as number }
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

function cpuMicros (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) * 1e4
}

async function measure (target: { url: string, pid: number }, token: string) {
  const cpuBefore = cpuMicros(target.pid)
  const result = await autocannon({ url: target.url, connections, duration: seconds, requests: [{ method: 'POST', path, body, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }] })
  const cpu = cpuMicros(target.pid) - cpuBefore
  return { rps: result.requests.average, p99: result.latency.p99, cpuUsPerRequest: cpu / Math.max(1, result.requests.total), non2xx: result.non2xx + result.errors }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0

/** The audit log alone: µs per record, written as a join's intent and result are. */
function perRecord (file: string, records: number): number {
  const audit = createAuditLog({ file, log: pino({ level: 'silent' }) })
  audit.start({ version: 'bench' })
  const actor = { sub: 'helpdesk-bot', org: 'example', roles: ['matrix-admin'] }
  const target = { room: RECORDED_ROOMS.publicTest, user_id: '@alice:test.local', room_id: RECORDED_ROOMS.publicTest }
  const started = performance.now()
  for (let i = 0; i < records / 2; i++) {
    audit.intent(`r${i}`, { action: 'room.join', actor, target, policy: { rule: 'join-roles', effect: 'allow' } })
    audit.result(`r${i}`, { action: 'room.join', outcome: 'success', status: 200, actor, target, client: { ip: '127.0.0.1', user_agent: 'autocannon' }, upstream: { call: 'join', status: 200, matrix_errcode: null, duration_ms: 1.2 }, policy: { rule: 'join-roles', effect: 'allow' }, duration_ms: 2.3 })
  }
  const us = (performance.now() - started) * 1000 / records
  audit.stop({})
  return us
}

try {
  const homeserver = spawn(process.execPath, ['--import', 'tsx', 'bench/homeserver.ts', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(homeserver)
  const synapseUrl = await new Promise<string>((resolve) => homeserver.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())))
  const auditFile = join(workDir, 'audit.log')
  const toFile = await startGateway(synapseUrl, auditFile)
  const toNull = await startGateway(synapseUrl, '/dev/null')
  const token = signJwt({ alg: 'HS256' }, helpdeskClaims({}, 3600), SECRET)
  for (const target of [toFile, toNull]) await autocannon({ url: target.url, connections: 10, duration: 1, requests: [{ method: 'POST', path, body, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }] })
  const runs: Record<'file' | 'null', Array<Awaited<ReturnType<typeof measure>>>> = { file: [], null: [] }
  for (let round = 0; round < rounds; round++) {
    runs.file.push(await measure(toFile, token))
    runs.null.push(await measure(toNull, token))
  }
  const summary = (name: 'file' | 'null') => ({
    rps: Math.round(median(runs[name].map((run) => run.rps))),
    p99: median(runs[name].map((run) => run.p99)),
    cpuUsPerRequest: Math.round(median(runs[name].map((run) => run.cpuUsPerRequest))),
    non2xx: runs[name].reduce((sum, run) => sum + run.non2xx, 0)
  })
  const file = summary('file')
  const devNull = summary('null')
  const fileRecords = 40_000
  const alone = { file: perRecord(join(workDir, 'alone.log'), fileRecords), devNull: perRecord('/dev/null', fileRecords) }
  const report = {
    connections,
    seconds,
    rounds,
    'gateway, audit to a file': file,
    'gateway, AUDIT_LOG_FILE=/dev/null': devNull,
    'rps file ÷ /dev/null': Number((file.rps / devNull.rps).toFixed(3)),
    'gateway CPU µs per request, file − /dev/null (two records)': file.cpuUsPerRequest - devNull.cpuUsPerRequest,
    'audit log alone, µs per record (serialise + SHA-256 + write)': { file: Number(alone.file.toFixed(2)), devNull: Number(alone.devNull.toFixed(2)) },
    'audit file bytes per join (two records)': Math.round(statSync(join(workDir, 'alone.log')).size / (fileRecords / 2))
  }
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
} finally {
  for (const child of children) child.kill('SIGKILL')
  rmSync(workDir, { recursive: true, force: true })
}
