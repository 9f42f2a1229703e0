/**
 * The flood phase of `npm run bench` (BENCH_PHASES=flood): what a caller holding any valid token
 * can cost the gateway. FLOOD_CONNECTIONS (default 4) connections post batches of FLOOD_ITEMS
 * (default 100) joins that are all refused, each with a fresh Idempotency-Key, for FLOOD_SECONDS
 * (default 60) per variant, each variant against a gateway of its own:
 *
 *   outsider   a token with no roles and an org outside ALLOWED_ORGS
 *   no-grant   a token of an allowed org whose roles the policy grants nothing
 *
 * Reported per variant: the gateway's RSS before, at its peak and after (2 s idle), batches
 * answered (by status), and the audit file's growth in records and bytes, per refused batch.
 * Budgets (issue 19): peak RSS at most the idle RSS + IDEMPOTENCY_MAX_BYTES + 64 MiB, and at
 * most one audit record per refused batch.
 */
import { randomUUID } from 'node:crypto'
import { statSync, readFileSync } from 'node:fs'
import { Pool } from 'undici'

/** A gateway process started for one variant. */
export interface FloodTarget { url: string, pid: number }

export interface FloodPhaseOptions {
  /** Starts a gateway with these variables on top of the bench's own (its audit in `env.AUDIT_LOG_FILE`). */
  start: (name: string, env: Record<string, string>) => Promise<FloodTarget>
  stop: (target: FloodTarget) => Promise<void>
  /** A valid token with these claims over the bench's defaults (sub, org example, lifetime). */
  sign: (claims: Record<string, unknown>) => string
  rssMiB: (pid: number) => number
  /** The audit file of the variant `name`. */
  auditFile: (name: string) => string
  room: string
  user: string
  log: (line: string) => void
}

const seconds = Number(process.env.FLOOD_SECONDS ?? 60)
const connections = Number(process.env.FLOOD_CONNECTIONS ?? 4)
const items = Number(process.env.FLOOD_ITEMS ?? 100)
/** IDEMPOTENCY_MAX_BYTES's default: the store may hold this much, the rest must stay flat. */
const STORE_BUDGET_MIB = 64
const HEADROOM_MIB = 64

const VARIANTS = [
  { name: 'outsider', what: 'no roles, org outside ALLOWED_ORGS', claims: { sub: 'flood-outsider', org: 'intruder', roles: [] } },
  { name: 'no-grant', what: 'allowed org, no role the policy grants', claims: { sub: 'flood-nobody', org: 'example', roles: ['nobody'] } }
]

export interface FloodResult {
  variant: string
  caller: string
  seconds: number
  connections: number
  items_per_batch: number
  batches: number
  by_status: Record<string, number>
  errors: number
  rss_mib: { before: number, peak: number, after: number }
  audit: { records: number, bytes: number, records_per_batch: number, bytes_per_batch: number }
}

function auditSize (file: string): { records: number, bytes: number } {
  try {
    const text = readFileSync(file, 'utf8')
    return { records: text.split('\n').filter((line) => line.startsWith('{')).length, bytes: statSync(file).size }
  } catch {
    return { records: 0, bytes: 0 }
  }
}

const round1 = (n: number) => Math.round(n * 10) / 10

async function floodOne (options: FloodPhaseOptions, variant: typeof VARIANTS[number]): Promise<FloodResult> {
  const auditFile = options.auditFile(variant.name)
  const target = await options.start(`gateway, flood ${variant.name}`, { ALLOWED_ORGS: 'example', AUDIT_LOG_FILE: auditFile })
  try {
    const body = JSON.stringify({ items: Array.from({ length: items }, () => ({ action: 'room.join', room: options.room, user_id: options.user })) })
    const headers = { authorization: `Bearer ${options.sign(variant.claims)}`, 'content-type': 'application/json' }
    const pool = new Pool(target.url, { connections })
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const auditBefore = auditSize(auditFile)
    const before = options.rssMiB(target.pid)
    let peak = before
    const sampler = setInterval(() => { peak = Math.max(peak, options.rssMiB(target.pid)) }, 100)
    const byStatus: Record<string, number> = {}
    let errors = 0
    const until = performance.now() + seconds * 1000
    await Promise.all(Array.from({ length: connections }, async () => {
      while (performance.now() < until) {
        try {
          const response = await pool.request({ method: 'POST', path: '/v1/batch', headers: { ...headers, 'idempotency-key': randomUUID() }, body })
          await response.body.dump()
          byStatus[response.statusCode] = (byStatus[response.statusCode] ?? 0) + 1
        } catch {
          errors++
        }
      }
    }))
    clearInterval(sampler)
    peak = Math.max(peak, options.rssMiB(target.pid))
    await pool.close()
    await new Promise((resolve) => setTimeout(resolve, 2000))
    const after = options.rssMiB(target.pid)
    const auditAfter = auditSize(auditFile)
    const batches = Object.values(byStatus).reduce((sum, count) => sum + count, 0)
    const records = auditAfter.records - auditBefore.records
    const bytes = auditAfter.bytes - auditBefore.bytes
    return {
      variant: variant.name,
      caller: variant.what,
      seconds,
      connections,
      items_per_batch: items,
      batches,
      by_status: byStatus,
      errors,
      rss_mib: { before: round1(before), peak: round1(peak), after: round1(after) },
      audit: { records, bytes, records_per_batch: round1(records / Math.max(1, batches)), bytes_per_batch: Math.round(bytes / Math.max(1, batches)) }
    }
  } finally {
    await options.stop(target)
  }
}

export interface FloodPhase {
  results: FloodResult[]
  budgets: Record<string, string>
  markdown: string[]
}

/** Both variants, one after the other; the figures, the budgets and a Markdown table. */
export async function floodPhase (options: FloodPhaseOptions): Promise<FloodPhase> {
  const results: FloodResult[] = []
  for (const variant of VARIANTS) {
    options.log(`flood: ${variant.name} (${variant.what}), ${connections} connections × ${seconds} s, ${items} items per batch`)
    const result = await floodOne(options, variant)
    options.log(`flood: ${variant.name}: ${JSON.stringify(result)}`)
    results.push(result)
  }
  const budgets: Record<string, string> = {}
  for (const result of results) {
    const growth = round1(result.rss_mib.peak - result.rss_mib.before)
    budgets[`flood ${result.variant}: RSS growth, MiB (≤ ${STORE_BUDGET_MIB} + ${HEADROOM_MIB})`] = `${growth} (${result.rss_mib.before} → ${result.rss_mib.peak})`
    budgets[`flood ${result.variant}: audit records per refused batch (≤ 1)`] = String(result.audit.records_per_batch)
  }
  const markdown = [
    `Flood: ${connections} connections posting batches of ${items} refused joins with a fresh Idempotency-Key each, ${seconds} s per variant, a gateway each:`,
    '',
    '| caller | batches (status) | RSS before / peak / after, MiB | audit growth | per batch |',
    '| --- | --- | --- | --- | --- |',
    ...results.map((result) => `| ${result.caller} | ${result.batches} (${Object.entries(result.by_status).map(([status, count]) => `${count}× ${status}`).join(', ')}${result.errors > 0 ? `, ${result.errors} errors` : ''}) | ${result.rss_mib.before} / ${result.rss_mib.peak} / ${result.rss_mib.after} | ${result.audit.records} records, ${round1(result.audit.bytes / 1048576)} MiB | ${result.audit.records_per_batch} records, ${result.audit.bytes_per_batch} bytes |`),
    ''
  ]
  return { results, budgets, markdown }
}
