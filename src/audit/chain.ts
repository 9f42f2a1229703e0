/**
 * The record format and its hash chain, shared by the writer (log.ts) and the verifier.
 *
 * A record is one JSON line:
 *   {"seq":7,"time":"…","event":"intent","log":"audit",…fields…,"prev":"<hash of seq 6>","hash":"<hash>"}
 * `hash` is hex SHA-256 (HMAC-SHA256 with the chain key) over the UTF-8 bytes of that same line
 * without its `,"hash":"…"` member, i.e. over `{"seq":7,…,"prev":"…"}`, which is itself valid
 * JSON. The verifier strips the fixed-length suffix and recomputes: no re-serialisation, so
 * what is checked is exactly what was written.
 */
import { createHmac, hash } from 'node:crypto'

export type AuditEvent = 'start' | 'intent' | 'result' | 'stop'
export const AUDIT_EVENTS: ReadonlySet<string> = new Set<AuditEvent>(['start', 'intent', 'result', 'stop'])

/** `,"hash":"` + 64 hex digits + `"}` */
const HASH_MEMBER_LENGTH = 9 + 64 + 2

export function chainHash (unsigned: string, key: Buffer | undefined): string {
  // crypto.hash: the one-shot form, without a Hash object per record.
  return key === undefined ? hash('sha256', unsigned, 'hex') : createHmac('sha256', key).update(unsigned).digest('hex')
}

/** The line to write (with its newline) for an unsigned record `{…,"prev":…}`. */
export function seal (unsigned: string, hash: string): string {
  return `${unsigned.slice(0, -1)},"hash":"${hash}"}\n`
}

/** The bytes the hash was computed over, for a line that ends in the hash member. */
export function unsealed (line: string): string {
  return `${line.slice(0, -HASH_MEMBER_LENGTH)}}`
}

/** Pairs a result with its intent: the request ID, and the item's index inside a batch. */
export function attemptKey (requestId: string, fields: Record<string, unknown>): string {
  const batch = fields.batch as { index?: unknown } | undefined
  return batch !== undefined && batch !== null && batch.index !== undefined ? `${requestId}\u0000${String(batch.index)}` : requestId
}

/** What identifies a record in the chain, read from its first and last members only. */
export interface RecordLink { seq: number, prev: string | null, hash: string }

const RECORD_LINK = /^\{"seq":(\d{1,15}),.*,"prev":(?:null|"([0-9a-f]{64})"),"hash":"([0-9a-f]{64})"\}$/s

export function recordLink (line: string): RecordLink | undefined {
  const match = RECORD_LINK.exec(line)
  if (match === null) return undefined
  return { seq: Number(match[1]), prev: match[2] ?? null, hash: match[3] as string }
}

/** The start of a record that was cut short (a failed write or a kill mid-write). */
export function looksLikeRecordStart (line: string): boolean {
  return line.startsWith('{"seq":')
}

/** Where the chain stands: the last record written, persisted beside the file at rotation and stop. */
export interface ChainHead { seq: number, hash: string }

export function parseChainHead (text: string): ChainHead | undefined {
  try {
    const value = JSON.parse(text) as Partial<ChainHead> | null
    if (typeof value?.seq === 'number' && Number.isSafeInteger(value.seq) && value.seq > 0 &&
      typeof value.hash === 'string' && /^[0-9a-f]{64}$/.test(value.hash)) {
      return { seq: value.seq, hash: value.hash }
    }
  } catch {}
  return undefined
}
