import { closeSync, openSync, writeSync } from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import pino from 'pino'
import type { Outcome, ProblemCode } from './errors.js'

export interface AuditActor { sub: string | null, org: string | null, roles: string[] }
export interface AuditUpstream { call: string, status: number | null, matrix_errcode: string | null, duration_ms: number }

export interface AuditEntry {
  request_id: string
  action: string
  outcome: Outcome
  status: number
  code?: ProblemCode
  actor: AuditActor | null
  target: { room: string | null, user_id: string | null, room_id?: string }
  client: { ip: string, user_agent: string | null }
  upstream?: AuditUpstream
  duration_ms: number
}

const LINE_BREAKS_JSON_LEAVES_RAW = /[\u2028\u2029]/g

/**
 * A synchronous destination: the line is on disk (or in the pipe) before the response is
 * sent, so a process killed right after answering has recorded it. Any write error is
 * thrown back to the caller, which then refuses actions until a write succeeds again.
 */
class SyncAuditDestination {
  private fd: number | undefined

  constructor (private readonly file: string | undefined) {}

  write (line: string): void {
    // JSON allows raw U+2028/U+2029, but many line-based readers split on them.
    const safe = line.replace(LINE_BREAKS_JSON_LEAVES_RAW, (c) => `\\u${c.charCodeAt(0).toString(16)}`)
    const fd = this.open()
    const buffer = Buffer.from(safe)
    let offset = 0
    let busyRetries = 0
    while (offset < buffer.length) {
      try {
        offset += writeSync(fd, buffer, offset)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++busyRetries > 100) throw err
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1)
      }
    }
  }

  open (): number {
    if (this.fd === undefined) this.fd = this.file === undefined ? 1 : openSync(this.file, 'a', 0o640)
    return this.fd
  }

  get isOpen (): boolean { return this.fd !== undefined }

  close (): void {
    if (this.fd !== undefined && this.fd !== 1) closeSync(this.fd)
    this.fd = undefined
  }
}

export interface AuditLog {
  /** Writes one entry; false when the destination failed (the caller refuses further actions). */
  record: (entry: AuditEntry) => boolean
  /** False after a failed write, until a write succeeds again (or the file can be opened again). */
  readonly available: boolean
  close: () => void
}

export function createAuditLog (file: string | undefined, log: FastifyBaseLogger, onWriteFailure: () => void = () => {}): AuditLog {
  const destination = new SyncAuditDestination(file)
  const logger = pino({
    base: null,
    timestamp: pino.stdTimeFunctions.isoTime,
    // In place of pino's numeric level: tells audit lines apart when they share stdout with the service log.
    formatters: { level: () => ({ log: 'audit' }) }
  }, destination)
  let available = true
  const fail = (err: unknown) => {
    if (available) {
      log.error({ err: { code: (err as NodeJS.ErrnoException).code, message: (err as Error).message } }, 'cannot write the audit log: actions are refused until it can be written again')
    }
    available = false
  }
  /** Opening the destination is retried on each check; write errors only clear with a write. */
  const tryOpen = () => {
    try {
      destination.open()
      return true
    } catch (err) {
      fail(err)
      return false
    }
  }
  tryOpen()

  return {
    record (entry) {
      try {
        logger.info(entry)
        available = true
        return true
      } catch (err) {
        fail(err)
        onWriteFailure()
        // The attempt may already have reached Synapse: keep its record in the service log.
        log.error({ audit: entry }, 'audit entry not written to the audit log')
        return false
      }
    },
    get available () {
      if (!available && !destination.isOpen) available = tryOpen()
      return available
    },
    close () { destination.close() }
  }
}
