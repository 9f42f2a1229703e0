/**
 * The version-2 audit log as a file on disk: one chained JSON line per record, continued across
 * restarts and rotations, a fragment never glued to the next record, an unwritable destination
 * reported as unavailable. Each file written here is checked with the verifier.
 */
import { spawn } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import pino from 'pino'
import t from 'tap'
import { createAuditLog, type AuditLogOptions } from '../../src/audit/log.js'
import { formatVerifyReport, verifyAuditFiles } from '../../src/audit/verify.js'
import { compiled } from '../helpers/compiled.js'
import { collect, exited } from '../helpers/process.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

function serviceLog () {
  const lines: string[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(line) } })
  return { log, text: () => lines.join('') }
}

function tempFile (t: { testdir: () => string }) {
  return join(t.testdir(), 'audit.log')
}

function records (file: string): Array<Record<string, any>> {
  return readFileSync(file, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line))
}

function verified (...files: string[]) {
  return formatVerifyReport(verifyAuditFiles(files.map((name) => ({ name, text: readFileSync(name, 'utf8') }))))
}

function auditLog (file: string | undefined, extra: Partial<AuditLogOptions> = {}) {
  const service = serviceLog()
  return { audit: createAuditLog({ file, log: service.log, ...extra }), service }
}

t.test('records form one chain: seq increases, prev links, and the verifier calls it intact', async (t) => {
  const file = tempFile(t)
  const { audit } = auditLog(file)
  t.equal(audit.available, true)
  t.equal(audit.start({ version: '0.1.0', config: 'f00d' }), true)
  t.equal(audit.intent('req-1', { action: 'room.join', target: { room: '#a:test.local', user_id: '@alice:test.local' } }), true)
  t.equal(audit.openIntents, 1)
  t.equal(audit.result('req-1', { action: 'room.join', outcome: 'success', status: 200 }), true)
  t.equal(audit.openIntents, 0)
  audit.stop({ reason: 'SIGTERM' })

  const written = records(file)
  t.same(written.map((record) => [record.seq, record.event]), [[1, 'start'], [2, 'intent'], [3, 'result'], [4, 'stop']])
  t.same(Object.keys(written[1] as object).slice(0, 3), ['seq', 'time', 'event'], 'seq, time and event come first')
  t.equal(written[0]?.prev, null, 'the very first record links to nothing')
  for (let i = 1; i < written.length; i++) t.equal(written[i]?.prev, written[i - 1]?.hash, `record ${i + 1} links to record ${i}`)
  t.match(written[1], { request_id: 'req-1', action: 'room.join', target: { room: '#a:test.local' } })
  t.same(verified(file), { lines: ['intact: 4 records in 1 file, seq 1–4'], exitCode: 0 })
  t.equal(audit.intent('req-2', {}), false, 'nothing is written after stop')
})

t.test('whatever the fields hold, a record stays one line and the log keeps its own members', async (t) => {
  const file = tempFile(t)
  const { audit } = auditLog(file)
  const nasty = 'a\nb\r\nc\u2028d\u2029e\u001b[31m"}{"seq":1'
  audit.intent(nasty, { reason: nasty, seq: 99, hash: 'forged', prev: null, event: 'stop', request_id: 'other' })
  audit.result(nasty, {})
  const text = readFileSync(file, 'utf8')
  // eslint-disable-next-line no-control-regex
  t.notMatch(text, /[\u2028\u2029\u001b\r]/)
  const written = records(file)
  t.equal(written.length, 2)
  t.match(written[0], { seq: 1, event: 'intent', request_id: nasty, reason: nasty })
  t.match(written[0]?.hash, /^[0-9a-f]{64}$/, 'a field named hash does not replace the hash')
  t.equal(written[1]?.prev, written[0]?.hash)
  t.same(verified(file).exitCode, 0)
})

t.test('a second gateway on the same file continues its seq and chain', async (t) => {
  const file = tempFile(t)
  const first = auditLog(file).audit
  first.start({ version: '1' })
  first.intent('r1', { action: 'room.join' })
  // killed: no result, no stop
  const second = auditLog(file).audit
  second.start({ version: '1' })
  second.result('r2', { action: 'room.join', outcome: 'denied' })
  const written = records(file)
  t.same(written.map((record) => record.seq), [1, 2, 3, 4])
  t.equal(written[2]?.prev, written[1]?.hash, 'the new start links to the last record of the earlier process')
  t.same(verified(file).lines, [
    'open intents: 1 without a result (outcome unknown: check Synapse; open intents alone do not fail the check)',
    `open intent: request_id "r1" (room.join) seq 2 at ${file}:2`,
    'intact: 4 records in 1 file, seq 1–4'
  ])
})

t.test('a long last record is still found at restart', async (t) => {
  const file = tempFile(t)
  const first = auditLog(file).audit
  first.start({})
  first.result('big', { reason: 'x'.repeat(40_000) })
  auditLog(file).audit.start({})
  t.same(records(file).map((record) => record.seq), [1, 2, 3])
  t.equal(verified(file).exitCode, 0)
})

t.test('rotation: after rename and reopen the new file links to the old one', async (t) => {
  const file = tempFile(t)
  const { audit } = auditLog(file)
  audit.start({})
  audit.result('r1', { outcome: 'success' })
  renameSync(file, `${file}.1`)
  audit.result('r2', { outcome: 'success' })
  audit.reopen()
  t.equal(readFileSync(file, 'utf8'), '', 'reopen creates the new file; nothing is written to it yet')
  audit.result('r3', { outcome: 'success' })
  audit.stop({})
  t.same(records(`${file}.1`).map((record) => record.seq), [1, 2, 3], 'until reopen, records go to the renamed file')
  t.equal(records(file)[0]?.prev, records(`${file}.1`)[2]?.hash)
  t.same(verified(`${file}.1`, file), { lines: ['intact: 5 records in 2 files, seq 1–5'], exitCode: 0 })
  t.match(verified(file).lines, ['starts at seq 4 (earlier files not given)', 'intact: 2 records in 1 file, seq 4–5'])
})

t.test('a restart right after rotation, before any new record, continues from the chain head', async (t) => {
  const file = tempFile(t)
  const first = auditLog(file).audit
  first.start({})
  first.result('r1', {})
  renameSync(file, `${file}.1`)
  first.reopen()
  // killed before writing anything to the new file
  auditLog(file).audit.start({})
  t.same(verified(`${file}.1`, file).lines, ['intact: 3 records in 2 files, seq 1–3'])

  // logrotate while the gateway is stopped: stop wrote the head too
  const stopped = auditLog(file).audit
  stopped.stop({})
  renameSync(file, `${file}.0`)
  auditLog(file).audit.start({})
  t.same(verified(`${file}.1`, `${file}.0`, file).lines, ['intact: 5 records in 3 files, seq 1–5'])
})

t.test('an unreadable chain head is a warning, and the file itself still gives the chain', async (t) => {
  const file = tempFile(t)
  auditLog(file).audit.start({})
  mkdirSync(`${file}.chain-head`)
  const { audit, service } = auditLog(file)
  audit.start({})
  t.match(service.text(), /cannot read the audit chain head/)
  audit.reopen()
  t.match(service.text(), /cannot write the audit chain head/)
  t.equal(verified(file).exitCode, 0)
})

t.test('a file that opens but cannot be written (/dev/full) is unavailable from the start', async (t) => {
  let failures = 0
  const { audit, service } = auditLog('/dev/full', { onWriteFailure: () => { failures++ } })
  t.equal(audit.start({ version: '1' }), false)
  t.equal(audit.available, false)
  t.equal(audit.intent('r1', { action: 'room.join' }), false, 'the caller refuses with audit_unavailable')
  t.equal(audit.openIntents, 0)
  t.equal(audit.result('r2', { action: 'room.join', outcome: 'unknown', status: 504 }), false)
  t.ok(failures >= 3, 'every failed write reaches the metric hook')
  const lines = service.text().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line))
  t.equal(lines.filter((line) => /cannot write the audit log/.test(line.msg)).length, 1, 'the outage is logged once')
  t.match(lines.find((line) => line.msg === 'audit result not written to the audit log'), {
    level: 50, audit: { event: 'result', request_id: 'r2', action: 'room.join', outcome: 'unknown', status: 504 }
  }, 'an unwritten result is kept in the service log, at error')
  audit.stop({})
  t.equal(audit.available, false)
})

t.test('a destination that cannot be opened is retried, and the missed start record comes first', async (t) => {
  const dir = join(t.testdir(), 'later')
  const file = join(dir, 'audit.log')
  const { audit, service } = auditLog(file)
  t.equal(audit.start({ version: '1' }), false)
  t.equal(audit.available, false)
  t.match(service.text(), /cannot open the audit log/)
  t.equal(audit.intent('r1', {}), false)
  mkdirSync(dir)
  t.equal(audit.available, true, 'available once the start record could be written')
  t.equal(audit.intent('r1', { action: 'room.join' }), true)
  t.same(records(file).map((record) => record.event), ['start', 'intent'])
  t.equal(records(file)[0]?.version, '1')
})

t.test('a write that failed leaves the next record on a line of its own', async (t) => {
  const dir = join(t.testdir(), 'gone')
  const file = join(dir, 'audit.log')
  mkdirSync(dir)
  const { audit } = auditLog(file)
  t.equal(audit.start({}), true)
  // The first failure is at open, after a reopen into a directory that is not there any more.
  renameSync(dir, `${dir}.old`)
  audit.reopen()
  t.equal(audit.available, false)
  t.equal(audit.intent('r1', {}), false)
  mkdirSync(dir)
  t.equal(audit.available, true, 'opening is retried when availability is asked')
  t.equal(audit.intent('r1', {}), true)
  t.equal(verified(join(`${dir}.old`, 'audit.log'), file).exitCode, 0)
})

t.test('a fragment at the end of the file: new records start on a new line and the rest stays intact', async (t) => {
  const file = tempFile(t)
  const first = auditLog(file).audit
  first.start({})
  first.intent('r1', { action: 'room.join' })
  appendFileSync(file, '{"seq":3,"time":"2026-11-27T10:00:00.000Z","event":"res') // killed mid-write
  const second = auditLog(file).audit
  second.start({})
  second.result('r1', { action: 'room.join', outcome: 'unknown' })
  t.same(verified(file), {
    lines: [
      `${file}:3: fragment: a record cut short (a failed write or a kill mid-write), not a whole record`,
      'NOT intact: 1 problem; 4 records in 1 file, seq 1–4'
    ],
    exitCode: 1
  })
  const lines = readFileSync(file, 'utf8').split('\n')
  t.equal(lines[2], '{"seq":3,"time":"2026-11-27T10:00:00.000Z","event":"res', 'the fragment stays alone on its line')
  t.match(JSON.parse(lines[3] as string), { seq: 3, event: 'start', prev: JSON.parse(lines[1] as string).hash })
})

t.test('with the chain key the records are HMACs: the right key verifies, none or another does not', async (t) => {
  const file = tempFile(t)
  const chainKey = Buffer.from('0123456789abcdef0123456789abcdef')
  const { audit } = auditLog(file, { chainKey })
  audit.start({})
  audit.result('r1', {})
  const text = readFileSync(file, 'utf8')
  t.same(formatVerifyReport(verifyAuditFiles([{ name: 'a', text }], chainKey)).lines, ['intact: 2 records in 1 file, seq 1–2'])
  // The key hint comes first, in one line, instead of one `edited` line per record.
  t.same(formatVerifyReport(verifyAuditFiles([{ name: 'a', text }])).lines, [
    '2 of 2 records do not match plain SHA-256: were they written with AUDIT_CHAIN_KEY_FILE? give it with --key-file FILE (those 2 edited lines are not listed)',
    'NOT intact: 2 problems; 2 records in 1 file, seq 1–2'
  ])
  t.same(formatVerifyReport(verifyAuditFiles([{ name: 'a', text }], Buffer.from('another key, sixteen bytes or more'))).lines, [
    'no record matches this key: is it the key the gateway had (AUDIT_CHAIN_KEY_FILE)? (the 2 edited lines are not listed)',
    'NOT intact: 2 problems; 2 records in 1 file, seq 1–2'
  ])
})

t.test('abandonOpen gives every open intent an unknown result, batch items apart', async (t) => {
  const file = tempFile(t)
  const { audit } = auditLog(file)
  audit.start({})
  audit.intent('r1', { action: 'room.join', target: { room: '!a:test.local', user_id: '@alice:test.local' } })
  audit.intent('b1', { action: 'room.join', batch: { id: 'b1', index: 0 } })
  audit.intent('b1', { action: 'room.remove', batch: { id: 'b1', index: 1 } })
  audit.intent('b1', { action: 'room.join', batch: { id: 'b1', index: 2 } })
  audit.result('b1', { action: 'room.remove', batch: { id: 'b1', index: 1 }, outcome: 'success' })
  t.equal(audit.openIntents, 3)
  t.match(verified(file).lines, [/^open intents: 3 /])
  t.equal(audit.abandonOpen({ reason: 'shutdown: grace period ended' }), 3)
  t.equal(audit.openIntents, 0)
  audit.stop({})
  const abandoned = records(file).filter((record) => record.outcome === 'unknown')
  t.same(abandoned.map((record) => [record.request_id, record.batch?.index ?? null, record.action]), [['r1', null, 'room.join'], ['b1', 0, 'room.join'], ['b1', 2, 'room.join']])
  t.match(abandoned[0], { event: 'result', target: { room: '!a:test.local' }, reason: 'shutdown: grace period ended' })
  t.same(verified(file), { lines: ['intact: 10 records in 1 file, seq 1–10'], exitCode: 0 })
})

t.test('a record the caller cannot serialise is refused without making the log unavailable', async (t) => {
  const file = tempFile(t)
  const { audit, service } = auditLog(file)
  t.equal(audit.intent('r1', { count: 1n }), false)
  t.equal(audit.available, true)
  t.match(service.text(), /audit record cannot be serialised/)
  t.equal(audit.intent('r1', {}), true)
  t.same(records(file).map((record) => record.seq), [1], 'the refused record took no seq')
})

/** The audit log module for a script run by a child process (compiled: see helpers/compiled.ts). */
const auditLogModule = () => pathToFileURL(compiled('src/audit/log.ts')).href

t.test('a record is in the file as soon as intent() returns: SIGKILL right after loses nothing', async (t) => {
  const file = tempFile(t)
  const script = `
    import pino from 'pino'
    import { createAuditLog } from '${auditLogModule()}'
    const audit = createAuditLog({ file: process.argv[1], log: pino() })
    audit.start({})
    for (let i = 0; i < 200; i++) audit.intent('r' + i, { action: 'room.join' })
    process.stderr.write('written\\n')
    setInterval(() => {}, 1000)
  `
  const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" --input-type=module -e "$1" "$2"', process.execPath, script, file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  const out = collect(child)
  t.after(() => { child.kill('SIGKILL') })
  for (let i = 0; !out.stderr.includes('written'); i++) {
    if (i > 600 || child.exitCode !== null) throw new Error(`the writer did not report its records: ${out.stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  child.kill('SIGKILL')
  t.equal((await exited(child)).signal, 'SIGKILL')
  const report = verifyAuditFiles([{ name: file, text: readFileSync(file, 'utf8') }])
  t.equal(report.records, 201)
  t.equal(report.openIntents.length, 200, 'every intent is there, each without a result')
  t.equal(report.intact, true)
})

t.test('on standard output the chain starts at null and the records verify', async (t) => {
  const script = `
    import pino from 'pino'
    import { createAuditLog } from '${auditLogModule()}'
    const audit = createAuditLog({ file: undefined, log: pino({}, process.stderr) })
    audit.start({})
    audit.result('r1', { outcome: 'success' })
    audit.reopen()
    audit.stop({})
  `
  const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" --input-type=module -e "$1"', process.execPath, script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  const out = collect(child)
  t.equal((await exited(child)).code, 0, out.stderr)
  const lines = out.stdout.split('\n').filter((line) => line !== '')
  t.equal(lines.length, 3)
  t.equal(JSON.parse(lines[0] as string).prev, null)
  t.match(JSON.parse(lines[0] as string), { log: 'audit', event: 'start' }, 'records can be told apart from the service log')
  t.same(formatVerifyReport(verifyAuditFiles([{ name: 'stdout', text: out.stdout }])).lines, ['intact: 3 records in 1 file, seq 1–3'])
  t.notOk(existsSync(join(root, 'undefined.chain-head')), 'no chain head for standard output')
})
