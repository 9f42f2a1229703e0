/**
 * The version-2 audit log: `start`, `intent`, `result` and `stop` records in one hash chain,
 * each written synchronously (in the kernel before the call returns, so a SIGKILL right after
 * loses nothing; not fsynced per record), continued across restarts and rotations.
 */
import type { KeyObject } from 'node:crypto'
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, writeFileSync, writeSync } from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import { attemptKey, chainHash, parseChainHead, recordLink, seal, type AuditEvent, type ChainHead } from './chain.js'
import { signCheckpoint } from './checkpoint.js'

export type { AuditEvent } from './chain.js'

export interface AuditLogOptions {
  /** undefined: standard output (fd 1); nothing can be read back there, so the first record links to null */
  file: string | undefined
  /** HMAC-SHA256 key (AUDIT_CHAIN_KEY_FILE); else plain SHA-256 */
  chainKey?: Buffer | undefined
  /** the service log, for error lines (audit records reach it only when they could not be written) */
  log: FastifyBaseLogger
  /** metric hook, called on every failed write */
  onWriteFailure?: () => void
  /** Signed checkpoints of the chain's head (AUDIT_CHECKPOINT_FILE), see checkpoint.ts. */
  checkpoint?: AuditCheckpointOptions | undefined
}

export interface AuditCheckpointOptions {
  /** appended to: one signed note per checkpoint */
  file: string
  /** Ed25519 (AUDIT_CHECKPOINT_KEY_FILE) */
  privateKey: KeyObject
  /** A checkpoint at least this often while the head moves (AUDIT_CHECKPOINT_INTERVAL_S), and one at stop. */
  intervalMs: number
}

export interface AuditLog {
  /** Writes the `start` record (version, config fingerprint, …); false when it failed (it is then written before the next record). */
  start: (fields: Record<string, unknown>) => boolean
  /** On disk before returning; false = not written: refuse with audit_unavailable and send nothing to Synapse. */
  intent: (requestId: string, fields: Record<string, unknown>) => boolean
  /** Closes that request's open intent, if any. */
  result: (requestId: string, fields: Record<string, unknown>) => boolean
  /** Shutdown: a `result` with outcome "unknown" (plus fields) for every intent still without one; returns how many were written. */
  abandonOpen: (fields: Record<string, unknown>) => number
  /** SIGHUP / logrotate: close and reopen the same path; the chain continues in the new file. */
  reopen: () => void
  /** Writes `stop`, then the last checkpoint (when checkpoints are on), and closes; later writes return false. */
  stop: (fields: Record<string, unknown>) => void
  /**
   * False after a failed write (or failed start) until a write succeeds again. Reading it while
   * false retries what can be retried without a caller's record: opening the destination and
   * writing a `start` record that failed, so readiness can recover without traffic.
   */
  readonly available: boolean
  readonly openIntents: number
}

/** Members the log writes itself; a caller's field of the same name is left out. */
const OWN_MEMBERS = ['seq', 'time', 'event', 'log', 'request_id', 'prev', 'hash'] as const
/** JSON allows raw U+2028/U+2029, but many line-based readers split on them. */
const LINE_BREAKS_JSON_LEAVES_RAW = /[\u2028\u2029]/g
/** How far back from the end of an existing file the last record is looked for. */
const TAIL_WINDOW = 8 * 1024
const TAIL_LIMIT = 1024 * 1024
/** Carried from an intent into the `unknown` result that abandonOpen writes for it. */
const ABANDONED_KEEPS = ['action', 'batch', 'target', 'actor'] as const

interface OpenIntent { requestId: string, fields: Record<string, unknown> }

function withoutOwnMembers (fields: Record<string, unknown>): Record<string, unknown> {
  for (const name of OWN_MEMBERS) {
    if (name in fields) {
      const copy = { ...fields }
      for (const own of OWN_MEMBERS) delete copy[own]
      return copy
    }
  }
  return fields
}

function escapeLineBreaks (text: string): string {
  return text.replace(LINE_BREAKS_JSON_LEAVES_RAW, (c) => `\\u${c.charCodeAt(0).toString(16)}`)
}

function writeAll (fd: number, buffer: Buffer): void {
  let offset = 0
  let busyRetries = 0
  while (offset < buffer.length) {
    try {
      offset += writeSync(fd, buffer, offset)
    } catch (err) {
      // A non-blocking pipe (stdout) that is full: wait a little, as a blocking write would.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++busyRetries > 100) throw err
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1)
    }
  }
}

/** fdatasync, where the destination has a disk behind it (a pipe or a terminal has none). */
function flushToDisk (fd: number): void {
  try {
    fdatasyncSync(fd)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EINVAL' && code !== 'ENOTSUP') throw err
  }
}

interface Tail { last: ChainHead | undefined, endsMidLine: boolean, searched: boolean }

/** The last record of a regular file, read from its end (growing the window for long lines). */
function readTail (file: string, size: number): Tail {
  const fd = openSync(file, 'r')
  try {
    const lastByte = Buffer.alloc(1)
    readSync(fd, lastByte, 0, 1, size - 1)
    const endsMidLine = lastByte[0] !== 0x0a
    for (let window = TAIL_WINDOW; ; window *= 4) {
      const from = Math.max(0, size - Math.min(window, TAIL_LIMIT))
      const buffer = Buffer.alloc(size - from)
      readSync(fd, buffer, 0, buffer.length, from)
      const lines = buffer.toString('utf8').split('\n')
      lines.pop() // after the last newline: empty, or a fragment
      // Unless the window reaches the start, its first piece may be the end of a longer line.
      const firstWhole = from === 0 ? 0 : 1
      for (let i = lines.length - 1; i >= firstWhole; i--) {
        const link = recordLink(lines[i] as string)
        if (link !== undefined) return { last: { seq: link.seq, hash: link.hash }, endsMidLine, searched: true }
      }
      if (from === 0) return { last: undefined, endsMidLine, searched: true }
      if (window >= TAIL_LIMIT) return { last: undefined, endsMidLine, searched: false }
    }
  } finally {
    closeSync(fd)
  }
}

export function createAuditLog (options: AuditLogOptions): AuditLog {
  const { file, chainKey, log } = options
  const onWriteFailure = options.onWriteFailure ?? (() => {})
  const headFile = file === undefined ? undefined : `${file}.chain-head`

  let fd: number | undefined
  let seq = 0
  let prev: string | null = null
  let chainKnown = false
  /** The last bytes at the destination are not a whole line: the next record starts with "\n". */
  let midLine = false
  let available = true
  let stopped = false
  let pendingStart: Record<string, unknown> | undefined
  const open = new Map<string, OpenIntent[]>()
  let openCount = 0

  let checkpointedSeq = 0
  let checkpointFailed = false

  const errorOf = (err: unknown) => ({ code: (err as NodeJS.ErrnoException).code, message: (err as Error).message })

  const unavailable = (err: unknown, what: string) => {
    if (available) log.error({ err: errorOf(err), audit_file: file ?? 'stdout' }, `cannot ${what} the audit log: actions are refused until it can be written again`)
    available = false
  }

  const readHeadFile = (): ChainHead | undefined => {
    if (headFile === undefined) return undefined
    try {
      return parseChainHead(readFileSync(headFile, 'utf8'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err: errorOf(err), file: headFile }, 'cannot read the audit chain head')
      return undefined
    }
  }

  const writeHeadFile = () => {
    if (headFile === undefined || prev === null) return
    const temporary = `${headFile}.${process.pid}.tmp`
    try {
      writeFileSync(temporary, `${JSON.stringify({ seq, hash: prev })}\n`, { mode: 0o640 })
      renameSync(temporary, headFile)
    } catch (err) {
      log.warn({ err: errorOf(err), file: headFile }, 'cannot write the audit chain head: a restart before the next record may start a new chain')
    }
  }

  /** Opens the destination (throws when it cannot); the first time, finds where the chain stands. */
  const destination = (): number => {
    if (fd !== undefined) return fd
    if (file === undefined) {
      fd = 1
      chainKnown = true
      return fd
    }
    const opened = openSync(file, 'a', 0o640)
    let tail: Tail = { last: undefined, endsMidLine: false, searched: true }
    try {
      const stat = fstatSync(opened)
      if (stat.isFile() && stat.size > 0) tail = readTail(file, stat.size)
    } catch (err) {
      log.warn({ err: errorOf(err), audit_file: file }, 'cannot read back the end of the audit log')
    }
    if (!tail.searched) log.warn({ audit_file: file }, `no audit record in the last ${TAIL_LIMIT} bytes of the audit log`)
    midLine = tail.endsMidLine
    if (!chainKnown) {
      // After a rotation the new file is empty: the head written beside it says where the chain stood.
      const head = readHeadFile()
      const last = tail.last !== undefined && (head === undefined || tail.last.seq >= head.seq) ? tail.last : head
      if (last !== undefined) {
        seq = last.seq
        prev = last.hash
      }
      chainKnown = true
    }
    fd = opened
    return fd
  }

  /** One record: serialised once, hashed over exactly the bytes written, then appended. */
  const writeRecord = (target: number, event: AuditEvent, requestId: string | undefined, fields: Record<string, unknown>): boolean => {
    let line: string
    let hash: string
    try {
      let unsigned = `{"seq":${seq + 1},"time":"${new Date().toISOString()}","event":"${event}","log":"audit"`
      if (requestId !== undefined) unsigned += `,"request_id":${JSON.stringify(requestId)}`
      const members = JSON.stringify(withoutOwnMembers(fields))
      if (members.length > 2) unsigned += `,${members.slice(1, -1)}`
      unsigned = escapeLineBreaks(`${unsigned},"prev":${prev === null ? 'null' : `"${prev}"`}}`)
      hash = chainHash(unsigned, chainKey)
      line = seal(unsigned, hash)
    } catch (err) {
      // A caller's bug (a BigInt, a cycle): nothing to write, the destination is fine.
      log.error({ err: errorOf(err), event, request_id: requestId }, 'audit record cannot be serialised')
      return false
    }
    try {
      writeAll(target, Buffer.from(midLine ? `\n${line}` : line))
    } catch (err) {
      // Part of it may be out there: whatever comes next starts on its own line.
      midLine = true
      unavailable(err, 'write')
      onWriteFailure()
      return false
    }
    seq += 1
    prev = hash
    midLine = false
    available = true
    return true
  }

  const append = (event: AuditEvent, requestId: string | undefined, fields: Record<string, unknown>): boolean => {
    if (stopped) return false
    let target: number
    try {
      target = destination()
    } catch (err) {
      unavailable(err, 'open')
      onWriteFailure()
      return false
    }
    if (pendingStart !== undefined && event !== 'start') {
      if (!writeRecord(target, 'start', undefined, pendingStart)) return false
      pendingStart = undefined
    }
    return writeRecord(target, event, requestId, fields)
  }

  /**
   * Appends a signed checkpoint of the head when it moved since the last one. The audit file is
   * flushed to disk first, so a checkpoint never vouches for records a power cut could still lose.
   */
  const writeCheckpoint = () => {
    const checkpoint = options.checkpoint
    if (checkpoint === undefined || prev === null || seq === checkpointedSeq) return
    try {
      if (fd !== undefined && fd !== 1) flushToDisk(fd)
      const note = signCheckpoint({ seq, hash: prev, time: new Date().toISOString() }, checkpoint.privateKey)
      const target = openSync(checkpoint.file, 'a', 0o640)
      try {
        // After a failed write, blank lines end whatever part of a note got out (the verifier reports it).
        writeAll(target, Buffer.from(checkpointFailed ? `\n\n${note}` : note))
        fsyncSync(target)
      } finally {
        closeSync(target)
      }
      if (checkpointFailed) log.info({ checkpoint_file: checkpoint.file, seq }, 'audit checkpoints written again')
      checkpointFailed = false
      checkpointedSeq = seq
    } catch (err) {
      if (!checkpointFailed) log.error({ err: errorOf(err), checkpoint_file: checkpoint.file }, 'cannot write the audit checkpoint: nothing vouches for the audit\'s length until it can')
      checkpointFailed = true
    }
  }
  const checkpointTimer = options.checkpoint === undefined ? undefined : setInterval(writeCheckpoint, options.checkpoint.intervalMs)
  checkpointTimer?.unref()

  const takeOpen = (key: string): OpenIntent | undefined => {
    const list = open.get(key)
    const first = list?.shift()
    if (first === undefined) return undefined
    if (list?.length === 0) open.delete(key)
    openCount -= 1
    return first
  }

  const result = (requestId: string, fields: Record<string, unknown>): boolean => {
    takeOpen(attemptKey(requestId, fields))
    if (append('result', requestId, fields)) return true
    // The attempt may have reached Synapse: keep what happened in the service log.
    log.error({ audit: { event: 'result', request_id: requestId, ...fields } }, 'audit result not written to the audit log')
    return false
  }

  return {
    start (fields) {
      pendingStart = undefined
      if (append('start', undefined, fields)) return true
      pendingStart = fields
      log.error({ audit: { event: 'start', ...fields } }, 'audit start record not written; it is written before the next record')
      return false
    },
    intent (requestId, fields) {
      if (!append('intent', requestId, fields)) return false
      const key = attemptKey(requestId, fields)
      const list = open.get(key)
      if (list === undefined) open.set(key, [{ requestId, fields }])
      else list.push({ requestId, fields })
      openCount += 1
      return true
    },
    result,
    abandonOpen (fields) {
      let written = 0
      for (const list of [...open.values()]) {
        for (const intent of [...list]) {
          const kept: Record<string, unknown> = {}
          for (const name of ABANDONED_KEEPS) if (intent.fields[name] !== undefined) kept[name] = intent.fields[name]
          if (result(intent.requestId, { ...kept, outcome: 'unknown', ...fields })) written += 1
        }
      }
      return written
    },
    reopen () {
      if (stopped || file === undefined) return
      writeHeadFile()
      if (fd !== undefined) {
        try { closeSync(fd) } catch {}
        fd = undefined
      }
      try {
        destination()
      } catch (err) {
        unavailable(err, 'reopen')
      }
    },
    stop (fields) {
      if (stopped) return
      if (!append('stop', undefined, fields)) log.error({ audit: { event: 'stop', ...fields } }, 'audit stop record not written')
      stopped = true
      writeHeadFile()
      clearInterval(checkpointTimer)
      writeCheckpoint()
      if (fd !== undefined && fd !== 1) {
        try { closeSync(fd) } catch {}
      }
      fd = undefined
    },
    get available () {
      if (!available && !stopped) {
        if (pendingStart !== undefined) {
          if (append('start', undefined, pendingStart)) pendingStart = undefined
        } else if (fd === undefined) {
          try {
            destination()
            available = true
          } catch {}
        }
      }
      return available
    },
    get openIntents () { return openCount }
  }
}
