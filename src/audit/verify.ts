/**
 * Checks audit files (oldest first) against their hash chain: which lines were edited, removed,
 * reordered or inserted, which are not records at all, and which intents have no result.
 * Pure: the CLI (verify-cli.ts) reads the files and prints what this returns.
 */
import { attemptKey, AUDIT_EVENTS, chainHash, looksLikeRecordStart, recordLink, unsealed } from './chain.js'
import type { ParsedCheckpoint } from './checkpoint.js'

export type ProblemKind = 'edited' | 'removed' | 'reordered' | 'inserted' | 'fragment' | 'foreign' |
  /** checkpoints: the audit ends before one's head, disagrees with one, or one does not verify */
  'cut' | 'contradicted' | 'forged' | 'malformed'

export interface VerifyProblem { file: string, line: number, kind: ProblemKind, detail: string }
export interface OpenIntentReport { file: string, line: number, seq: number, requestId: string, action: string | null }
export interface VerifyReport {
  /** No problem found (open intents alone do not make a chain broken). */
  intact: boolean
  records: number
  files: number
  /** The lowest and highest seq seen. */
  firstSeq: number | null
  lastSeq: number | null
  /** The first record links to one that was not given (a rotated-away file): its seq. */
  startsAfterUnknown: number | null
  problems: VerifyProblem[]
  openIntents: OpenIntentReport[]
  /** With --checkpoints: how many verified, and the highest seq one vouches for. */
  checkpoints: { file: string, verified: number, latestSeq: number | null } | null
  /** Most records fail their hash for want of the right key: printed first, and their `edited` lines left out. */
  keyHint: string | null
}

interface Place { fileIndex: number, file: string, line: number }
interface Seen extends Place { seq: number, hash: string }
interface ParsedRecord extends Seen { prev: string | null, event: string | null, requestId: string | null, action: string | null, attempt: string | null, hashMatches: boolean }
type Entry = { kind: 'record', record: ParsedRecord } | { kind: 'fragment' | 'foreign', place: Place }

/** Why a second chain can follow the first in the files given; either way seq must increase. */
const NEW_CHAIN_CAUSES = 'seq must increase (records replayed from another chain, or a gateway that restarted on standard output or without its audit file and chain head: verify each chain on its own)'

const HASH_MISMATCH = 'the hash does not match the content'

const at = (place: Place) => `${place.file}:${place.line}`
const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`

function parseRecord (text: string, place: Place, key: Buffer | undefined): ParsedRecord | undefined {
  const link = recordLink(text)
  if (link === undefined) return undefined
  const hashMatches = chainHash(unsealed(text), key) === link.hash
  let event: string | null = null
  let requestId: string | null = null
  let action: string | null = null
  let attempt: string | null = null
  try {
    const value = JSON.parse(text) as Record<string, unknown>
    if (typeof value.event === 'string' && AUDIT_EVENTS.has(value.event)) event = value.event
    if (typeof value.request_id === 'string') {
      requestId = value.request_id
      attempt = attemptKey(requestId, value)
    }
    if (typeof value.action === 'string') action = value.action
  } catch {}
  return { ...place, ...link, event, requestId, action, attempt, hashMatches }
}

function entriesOf (files: Array<{ name: string, text: string }>, key: Buffer | undefined): Entry[] {
  const entries: Entry[] = []
  files.forEach(({ name, text }, fileIndex) => {
    const lines = text.split('\n')
    // After the last newline: nothing, or a line that was never finished.
    if (lines[lines.length - 1] === '') lines.pop()
    lines.forEach((line, index) => {
      if (line === '') return // carries nothing: a failed write leaves at most one
      const place = { fileIndex, file: name, line: index + 1 }
      const record = parseRecord(line, place, key)
      if (record !== undefined) entries.push({ kind: 'record', record })
      else entries.push({ kind: looksLikeRecordStart(line) ? 'fragment' : 'foreign', place })
    })
  })
  return entries
}

/** A checkpoint file, read and its signatures checked (checkpoint.ts readCheckpoints). */
export interface CheckpointFile { name: string, checkpoints: ParsedCheckpoint[] }

export function verifyAuditFiles (files: Array<{ name: string, text: string }>, key?: Buffer, checkpointFile?: CheckpointFile): VerifyReport {
  const entries = entriesOf(files, key)
  const problems: VerifyProblem[] = []
  const problem = (place: Place, kind: ProblemKind, detail: string) => problems.push({ file: place.file, line: place.line, kind, detail })

  const records = entries.flatMap((entry) => entry.kind === 'record' ? [entry.record] : [])
  /** How many records with each seq are still ahead: a seq that comes later was moved, not removed. */
  const ahead = new Map<number, number>()
  for (const record of records) ahead.set(record.seq, (ahead.get(record.seq) ?? 0) + 1)

  const byHash = new Map<string, Seen>()
  const inChain = new Map<number, Seen>()
  let highest = 0
  let previous: ParsedRecord | undefined
  let previousWasMoved = false
  let startsAfterUnknown: number | null = null
  const open = new Map<string, ParsedRecord[]>()
  const moved: Array<{ record: ParsedRecord, after: Seen }> = []

  for (const entry of entries) {
    if (entry.kind !== 'record') {
      problem(entry.place, entry.kind, entry.kind === 'fragment'
        ? 'a record cut short (a failed write or a kill mid-write), not a whole record'
        : 'not an audit record')
      continue
    }
    const record = entry.record
    ahead.set(record.seq, (ahead.get(record.seq) ?? 1) - 1)
    if (!record.hashMatches) problem(record, 'edited', HASH_MISMATCH)
    let duplicate = false
    let isMoved = false

    // A start record with no predecessor begins a chain: only the very first record may.
    const unlinkedStart = previous !== undefined && record.event === 'start' && record.prev === null
    const top = inChain.get(highest)
    if (previous === undefined) {
      if (record.prev !== null) startsAfterUnknown = record.seq
      highest = record.seq
    } else if (inChain.has(record.seq)) {
      const first = inChain.get(record.seq) as Seen
      duplicate = true
      problem(record, 'inserted', first.hash === record.hash
        ? `a copy of ${at(first)} (seq ${record.seq})`
        : unlinkedStart
          ? `a new chain starts at seq ${record.seq} after seq ${highest}${top === undefined ? '' : ` (${at(top)})`}: ${NEW_CHAIN_CAUSES}`
          : `a second record with seq ${record.seq} (the first is at ${at(first)})`)
    } else if (record.seq < highest) {
      isMoved = true
      // A run of moved records that still link to each other is one move.
      const continuesRun = previousWasMoved && record.prev === previous.hash && record.seq === previous.seq + 1
      if (!continuesRun) moved.push({ record, after: previous })
    } else {
      if (record.seq > highest + 1) {
        let missing = 0
        for (let seq = highest + 1; seq < record.seq; seq++) if ((ahead.get(seq) ?? 0) === 0) missing += 1
        if (missing > 0) {
          const range = missing === record.seq - highest - 1 ? ` (seq ${missing === 1 ? highest + 1 : `${highest + 1}–${record.seq - 1}`})` : ''
          problem(record, 'removed', `${plural(missing, 'record')} missing before ${at(record)}${range}`)
        }
      }
      const predecessor = inChain.get(record.seq - 1)
      if (unlinkedStart) {
        problem(record, 'inserted', `a start record that links to nothing (prev null) after seq ${highest}${top === undefined ? '' : ` (${at(top)})`}`)
      } else if (predecessor !== undefined && predecessor.hash !== record.prev) {
        const linked = record.prev === null ? undefined : byHash.get(record.prev)
        if (linked !== undefined) problem(record, 'inserted', `links to ${at(linked)} (seq ${linked.seq}), not to ${at(predecessor)} (seq ${predecessor.seq})`)
        else problem(predecessor, 'edited', `not the record ${at(record)} links to (replaced, or edited with its hash recomputed)`)
      }
      highest = record.seq
    }

    if (!duplicate) {
      inChain.set(record.seq, record)
      byHash.set(record.hash, record)
      if (record.attempt !== null && record.event === 'intent') {
        const list = open.get(record.attempt)
        if (list === undefined) open.set(record.attempt, [record])
        else list.push(record)
      } else if (record.attempt !== null && record.event === 'result') {
        const list = open.get(record.attempt)
        list?.shift()
        if (list?.length === 0) open.delete(record.attempt)
      }
    }
    previous = record
    previousWasMoved = isMoved
  }
  // The first record links to one that comes later, and what moved is the chain's own beginning
  // (the gateway's first `start`, prev null): the files were given newest first.
  const first = records[0]
  const linkedLater = first?.prev === null || first === undefined ? undefined : byHash.get(first.prev)
  const chainBeginningMoved = moved.length === 1 && moved[0]?.record.event === 'start' && moved[0].record.prev === null
  if (first !== undefined && linkedLater !== undefined && linkedLater !== first && chainBeginningMoved) {
    problem(first, 'reordered', `seq ${first.seq} links to ${at(linkedLater)} (seq ${linkedLater.seq}), which comes after it: give the files oldest first`)
    startsAfterUnknown = null
  } else {
    for (const { record, after } of moved) problem(record, 'reordered', `seq ${record.seq} comes after seq ${after.seq} (${at(after)})`)
  }

  const checked = records.length
  if (checkpointFile !== undefined) {
    const last = inChain.get(highest)
    const endsWithStop = records.some((record) => record.seq === highest && record.event === 'stop')
    for (const found of checkAgainstCheckpoints(checkpointFile, inChain, last, endsWithStop)) problem(found.place, found.kind, found.detail)
  }

  const mismatched = records.filter((record) => !record.hashMatches).length
  // Most records failing their hash means the wrong key (or none), not most lines edited: say
  // that first, in one line, instead of listing every line.
  let keyHint: string | null = null
  if (key === undefined && mismatched > checked / 2) {
    keyHint = `${mismatched} of ${plural(checked, 'record')} do not match plain SHA-256: were they written with AUDIT_CHAIN_KEY_FILE? give it with --key-file FILE (those ${mismatched} edited lines are not listed)`
  } else if (key !== undefined && checked > 0 && mismatched === checked) {
    keyHint = `no record matches this key: is it the key the gateway had (AUDIT_CHAIN_KEY_FILE)? (the ${plural(mismatched, 'edited line')} are not listed)`
  }
  const fileOrder = new Map([...files.map(({ name }) => name), checkpointFile?.name].map((name, index) => [name, index]))
  problems.sort((a, b) => ((fileOrder.get(a.file) ?? 0) - (fileOrder.get(b.file) ?? 0)) || (a.line - b.line))

  const openIntents = [...open.values()].flat()
    .sort((a, b) => (a.fileIndex - b.fileIndex) || (a.line - b.line))
    .map((record) => ({ file: record.file, line: record.line, seq: record.seq, requestId: record.requestId as string, action: record.action }))

  return {
    intact: problems.length === 0,
    records: checked,
    files: files.length,
    firstSeq: checked === 0 ? null : records.reduce((lowest, record) => Math.min(lowest, record.seq), Infinity),
    lastSeq: checked === 0 ? null : records.reduce((highest, record) => Math.max(highest, record.seq), 0),
    startsAfterUnknown,
    checkpoints: checkpointFile === undefined
      ? null
      : {
          file: checkpointFile.name,
          verified: checkpointFile.checkpoints.filter((checkpoint) => checkpoint.ok).length,
          latestSeq: checkpointFile.checkpoints.reduce<number | null>((latest, checkpoint) => checkpoint.ok && checkpoint.head.seq > (latest ?? 0) ? checkpoint.head.seq : latest, null)
        },
    problems,
    openIntents,
    keyHint
  }
}

/**
 * What the checkpoints say about the chain: a checkpoint that does not verify; the audit ending
 * before the highest head a checkpoint vouches for (its tail was cut); the first checkpoint
 * whose head's hash is not the hash of the record with that seq (the chain was rewritten).
 */
function checkAgainstCheckpoints (checkpointFile: CheckpointFile, inChain: Map<number, Seen>, last: Seen | undefined, endsWithStop: boolean): Array<{ place: Place, kind: ProblemKind, detail: string }> {
  const found: Array<{ place: Place, kind: ProblemKind, detail: string }> = []
  const placeOf = (line: number): Place => ({ fileIndex: -1, file: checkpointFile.name, line })
  const verified = checkpointFile.checkpoints.flatMap((checkpoint) => {
    if (checkpoint.ok) return [checkpoint]
    found.push({ place: placeOf(checkpoint.line), kind: checkpoint.kind, detail: checkpoint.detail })
    return []
  })
  const lastSeq = last?.seq ?? 0
  const beyond = verified.filter((checkpoint) => checkpoint.head.seq > lastSeq)
  if (beyond.length > 0) {
    const furthest = beyond.reduce((a, b) => b.head.seq > a.head.seq ? b : a)
    const cut = furthest.head.seq - lastSeq
    found.push({
      place: last ?? placeOf(furthest.line),
      kind: 'cut',
      detail: `the audit ends at seq ${lastSeq} but checkpoint at ${at(placeOf(furthest.line))} vouches for seq ${furthest.head.seq} (${plural(cut, 'record')} cut from the tail${furthest.head.time === '' ? '' : `; signed ${furthest.head.time}`})`
    })
  }
  // A clean shutdown writes a checkpoint after its stop record: an audit that ends with one no
  // checkpoint vouches for had its checkpoint file cut (or emptied, or replaced by an older copy).
  if (endsWithStop && last !== undefined && !verified.some((checkpoint) => checkpoint.head.seq >= last.seq)) {
    found.push({
      place: last,
      kind: 'cut',
      detail: `the audit ends with the stop record at seq ${last.seq}, but no checkpoint in ${checkpointFile.name} vouches for it (${plural(verified.length, 'signed checkpoint')}; the gateway writes one at every shutdown): the checkpoint file was cut or replaced`
    })
  }
  const contradicted = verified.filter((checkpoint) => {
    const record = inChain.get(checkpoint.head.seq)
    return record !== undefined && record.hash !== checkpoint.head.hash
  })
  const earliest = contradicted[0]
  if (earliest !== undefined) {
    const record = inChain.get(earliest.head.seq) as Seen
    const others = contradicted.length - 1
    found.push({
      place: record,
      kind: 'contradicted',
      detail: `checkpoint at ${at(placeOf(earliest.line))} vouches for seq ${earliest.head.seq} with hash ${earliest.head.hash.slice(0, 16)}…, this record's is ${record.hash.slice(0, 16)}… (the chain was rewritten from here or before${others > 0 ? `; ${plural(others, 'later checkpoint')} disagree too` : ''})`
    })
  }
  return found
}

const MAX_PROBLEM_LINES = 1000

/** What the CLI prints, one string a line, and its exit code (0 intact, 1 not). */
export function formatVerifyReport (report: VerifyReport): { lines: string[], exitCode: number } {
  const lines: string[] = []
  const intact = report.problems.length === 0
  if (report.keyHint !== null) lines.push(report.keyHint)
  if (report.startsAfterUnknown !== null) {
    lines.push(`starts at seq ${report.startsAfterUnknown} (earlier files not given)`)
  }
  const listed = report.keyHint === null ? report.problems : report.problems.filter((problem) => problem.detail !== HASH_MISMATCH)
  for (const problem of listed.slice(0, MAX_PROBLEM_LINES)) lines.push(`${problem.file}:${problem.line}: ${problem.kind}: ${problem.detail}`)
  if (listed.length > MAX_PROBLEM_LINES) lines.push(`… and ${listed.length - MAX_PROBLEM_LINES} more problems`)
  if (report.openIntents.length > 0) {
    lines.push(`open intents: ${report.openIntents.length} without a result (outcome unknown: check Synapse; open intents alone do not fail the check)`)
    for (const intent of report.openIntents) {
      lines.push(`open intent: request_id ${JSON.stringify(intent.requestId)}${intent.action === null ? '' : ` (${intent.action})`} seq ${intent.seq} at ${intent.file}:${intent.line}`)
    }
  }
  if (report.checkpoints !== null) {
    const { file, verified, latestSeq } = report.checkpoints
    lines.push(`checkpoints: ${plural(verified, 'signed checkpoint')} verified in ${file}${latestSeq === null ? '' : `, the latest vouching for seq ${latestSeq}`}`)
  }
  const range = report.firstSeq === null ? '' : `, seq ${report.firstSeq}–${report.lastSeq ?? report.firstSeq}`
  const counted = `${plural(report.records, 'record')} in ${plural(report.files, 'file')}${range}`
  if (intact) lines.push(`intact: ${counted}`)
  else lines.push(`NOT intact: ${plural(report.problems.length, 'problem')}; ${counted}`)
  return { lines, exitCode: intact ? 0 : 1 }
}
