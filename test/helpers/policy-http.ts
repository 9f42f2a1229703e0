import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'

interface Tap { after: (fn: () => unknown) => void }

/** A policy file in a fresh temp directory (removed after the test); `write` replaces its text. */
export function tempPolicy (t: Tap, yaml: string): { file: string, write: (text: string) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-policy-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'policy.yaml')
  const write = (text: string) => { writeFileSync(file, text) }
  write(yaml)
  return { file, write }
}

export interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: any, text: string }

/** One request to the gateway; `path` is sent exactly as given (percent-encoding included). */
export async function send (base: string, method: 'GET' | 'POST' | 'DELETE', path: string, token: string | null, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (token !== null) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await request(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.body.text()
  let parsed: unknown
  try { parsed = JSON.parse(text) } catch { parsed = undefined }
  return { status: response.statusCode, headers: response.headers, body: parsed, text }
}

/** Polls `probe` until `done` holds for its value, at most `timeoutMs`; the error says what was awaited and the last value. */
export async function waitFor<T> (what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs
  let last: T
  for (;;) {
    last = await probe()
    if (done(last)) return last
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
