/**
 * Helpers for the end-to-end audit tests: the gateway as a real process on an audit file,
 * requests to it, the audit file read back, and the verifier CLI run as a real child process.
 */
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { request } from 'undici'
import type { Harness } from './harness.js'
import { collect, exited, listening, runScript, spawnServer, type Collected } from './process.js'

interface Tap { after: (fn: () => unknown) => void }

/** Waits for a condition (polled every 10 ms); the error says what was waited for. */
export async function until (condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const started = Date.now()
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export type AuditRecord = Record<string, any>

/** The whole records of an audit file, parsed (fragments and foreign lines left out). */
export function recordsOf (file: string): AuditRecord[] {
  let text: string
  try { text = readFileSync(file, 'utf8') } catch { return [] }
  const records: AuditRecord[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try { records.push(JSON.parse(line) as AuditRecord) } catch {}
  }
  return records
}

export const forRequest = (records: AuditRecord[], requestId: string) => records.filter((record) => record.request_id === requestId)

export interface Gateway { child: ChildProcess, url: string, out: Collected, exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }> }

/** src/server.ts as a real process against the harness's homeserver, with generous rate limits. */
export async function startGateway (t: Tap, h: Harness, env: Record<string, string>): Promise<Gateway> {
  const child = spawnServer(h.serverEnv({ RATE_LIMIT_PER_MINUTE: '1000000', RATE_LIMIT_PER_IP_PER_MINUTE: '1000000', ...env }))
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const out = collect(child)
  const done = exited(child)
  const url = await listening(child, out)
  return { child, url, out, exited: done }
}

export interface Answer { status: number, body: any, headers: Record<string, string | string[] | undefined> }

/** One action request; `requestId` becomes its x-request-id (and so the audit's request_id). */
export async function act (url: string, method: 'GET' | 'POST' | 'DELETE', path: string, options: { token?: string, body?: unknown, requestId?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  if (options.requestId !== undefined) headers['x-request-id'] = options.requestId
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  const res = await request(`${url}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) })
  const text = await res.body.text()
  let body: unknown
  try { body = JSON.parse(text) } catch { body = text }
  return { status: res.statusCode, body, headers: res.headers }
}

export const joinPath = (room: string) => `/v1/rooms/${encodeURIComponent(room)}/members`

export interface VerifyRun { code: number | null, stdout: string, stderr: string, lines: string[] }

/**
 * The verifier `npm run audit:verify -- …` runs (src/audit/verify-cli.ts), as a real child
 * process; test/audit/verify.test.ts runs it once through npm itself.
 */
export async function verifyCli (args: string[], env: Record<string, string> = {}): Promise<VerifyRun> {
  const out = await runScript('src/audit/verify-cli.ts', args, env)
  return { code: out.code, stdout: out.stdout, stderr: out.stderr, lines: out.stdout.split('\n').filter((line) => line !== '') }
}
