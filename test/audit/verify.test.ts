/**
 * The verifier: a real chain written by the audit log, tampered with each way, reports the exact
 * lines and kinds; `npm run audit:verify` as a real process gives the exit codes.
 */
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import t from 'tap'
import { chainHash, seal, unsealed } from '../../src/audit/chain.js'
import { createAuditLog } from '../../src/audit/log.js'
import { formatVerifyReport, verifyAuditFiles } from '../../src/audit/verify.js'
import { runScript } from '../helpers/process.js'
const KEY = Buffer.from('a chain key of at least sixteen bytes')
const silent = pino({ level: 'silent' })

/** start, intent r1, result r1, intent r2, result r2, stop: six lines, as the gateway writes them. */
/** A whole chain; `run` tells two chains apart even when they are written within the same millisecond. */
function writeChain (file: string, chainKey?: Buffer, run?: string): string[] {
  const audit = createAuditLog({ file, log: silent, chainKey })
  const id = (n: number) => `${run ?? 'r'}${n}`
  audit.start({ version: '0.1.0', ...(run === undefined ? {} : { run }) })
  audit.intent(id(1), { action: 'room.join' })
  audit.result(id(1), { action: 'room.join', outcome: 'success', status: 200 })
  audit.intent(id(2), { action: 'room.join' })
  audit.result(id(2), { action: 'room.join', outcome: 'failed', status: 403 })
  audit.stop({})
  return readFileSync(file, 'utf8').split('\n').slice(0, -1)
}

const report = (name: string, lines: string[], key?: Buffer, end = '\n') =>
  formatVerifyReport(verifyAuditFiles([{ name, text: lines.join('\n') + end }], key))

/** Rewrites a record and computes its hash again, as someone without the chain key can. */
function reseal (line: string, change: (unsigned: string) => string, key?: Buffer): string {
  const unsigned = change(unsealed(line))
  return seal(unsigned, chainHash(unsigned, key)).slice(0, -1)
}
const hashOf = (line: string) => JSON.parse(line).hash as string

t.test('each kind of tampering is reported at its line', async (t) => {
  const file = join(t.testdir(), 'audit.log')
  const lines = writeChain(file)
  const F = 'audit.log'
  t.same(report(F, lines), { lines: ['intact: 6 records in 1 file, seq 1–6'], exitCode: 0 })

  const edited = [...lines]
  edited[2] = (edited[2] as string).replace('"outcome":"success"', '"outcome":"failed"')
  t.same(report(F, edited), { lines: [`${F}:3: edited: the hash does not match the content`, 'NOT intact: 1 problem; 6 records in 1 file, seq 1–6'], exitCode: 1 }, 'a field edited')

  t.same(report(F, lines.filter((_, i) => i !== 2)).lines, [
    `${F}:3: removed: 1 record missing before ${F}:3 (seq 3)`,
    'open intents: 1 without a result (outcome unknown: check Synapse; open intents alone do not fail the check)',
    `open intent: request_id "r1" (room.join) seq 2 at ${F}:2`,
    'NOT intact: 1 problem; 5 records in 1 file, seq 1–6'
  ], 'a line deleted')

  t.same(report(F, lines.filter((_, i) => i !== 2 && i !== 3)).lines[0], `${F}:3: removed: 2 records missing before ${F}:3 (seq 3–4)`, 'two lines deleted')

  const swapped = [lines[0], lines[1], lines[3], lines[2], lines[4], lines[5]] as string[]
  t.same(report(F, swapped).lines, [`${F}:4: reordered: seq 3 comes after seq 4 (${F}:3)`, 'NOT intact: 1 problem; 6 records in 1 file, seq 1–6'], 'two lines swapped')

  const copied = [...lines.slice(0, 5), lines[1], lines[5]] as string[]
  t.same(report(F, copied).lines, [`${F}:6: inserted: a copy of ${F}:2 (seq 2)`, 'NOT intact: 1 problem; 7 records in 1 file, seq 1–6'], 'a line copied in')

  const foreign = [...lines.slice(0, 3), '{"level":30,"msg":"not an audit record"}', ...lines.slice(3)]
  t.same(report(F, foreign).lines, [`${F}:4: foreign: not an audit record`, 'NOT intact: 1 problem; 6 records in 1 file, seq 1–6'], 'a foreign line')

  const last = lines[5] as string
  t.same(report(F, [...lines.slice(0, 5), last.slice(0, 40)], undefined, '').lines, [
    `${F}:6: fragment: a record cut short (a failed write or a kill mid-write), not a whole record`,
    'NOT intact: 1 problem; 5 records in 1 file, seq 1–5'
  ], 'truncated mid-line')
})

t.test('an edit with its hash recomputed: plain SHA-256 sees the broken link, only the key sees a rewritten chain', async (t) => {
  const plain = writeChain(join(t.testdir(), 'plain.log'))
  const F = 'a'
  const oneRecomputed = [...plain]
  oneRecomputed[2] = reseal(plain[2] as string, (text) => text.replace('"status":200', '"status":201'))
  t.same(report(F, oneRecomputed).lines, [`${F}:3: edited: not the record ${F}:4 links to (replaced, or edited with its hash recomputed)`, 'NOT intact: 1 problem; 6 records in 1 file, seq 1–6'])

  // Recompute everything from the edit on: without a key nothing can tell.
  const rewritten = [...oneRecomputed]
  for (let i = 3; i < rewritten.length; i++) {
    const previousHash = hashOf(rewritten[i - 1] as string)
    rewritten[i] = reseal(plain[i] as string, (text) => text.replace(/"prev":"[0-9a-f]{64}"\}$/, `"prev":"${previousHash}"}`))
  }
  t.same(report(F, rewritten).exitCode, 0, 'a chain recomputed from the edit on passes plain SHA-256')

  const keyed = writeChain(join(t.testdir(), 'keyed.log'), KEY)
  const forged = [...keyed]
  for (let i = 2; i < forged.length; i++) {
    const previousHash = hashOf(forged[i - 1] as string)
    forged[i] = reseal(keyed[i] as string, (text) => text.replace(/"prev":"[0-9a-f]{64}"\}$/, `"prev":"${previousHash}"}`).replace('"status":200', '"status":201'))
  }
  t.same(report(F, forged, KEY).lines.slice(0, 4), [
    `${F}:3: edited: the hash does not match the content`,
    `${F}:4: edited: the hash does not match the content`,
    `${F}:5: edited: the hash does not match the content`,
    `${F}:6: edited: the hash does not match the content`
  ], 'with the key, a recomputed record is an edit')
})

t.test('links that go elsewhere, second records with a seq, new chains and files out of order', async (t) => {
  const lines = writeChain(join(t.testdir(), 'audit.log'))
  const F = 'f'
  // seq 5 made to link to seq 3 (hash recomputed): an inserted record
  const relinked = [...lines]
  relinked[4] = reseal(lines[4] as string, (text) => text.replace(/"prev":"[0-9a-f]{64}"\}$/, `"prev":"${hashOf(lines[2] as string)}"}`))
  relinked[5] = reseal(lines[5] as string, (text) => text.replace(/"prev":"[0-9a-f]{64}"\}$/, `"prev":"${hashOf(relinked[4] as string)}"}`))
  t.same(report(F, relinked).lines[0], `${F}:5: inserted: links to ${F}:3 (seq 3), not to ${F}:4 (seq 4)`)

  const second = [...lines.slice(0, 4), reseal(lines[3] as string, (text) => text.replace('"request_id":"r2"', '"request_id":"r9"')), ...lines.slice(4)]
  t.same(report(F, second).lines[0], `${F}:5: inserted: a second record with seq 4 (the first is at ${F}:4)`)

  // A gateway on standard output restarted: its new chain starts from null, and seq goes back
  // to 1. Since version 3 that is reported (a replay looks the same): verify each chain on its own.
  const other = writeChain(join(t.testdir(), 'other.log'))
  const twoChains = report(F, [...lines, ...other])
  t.match(twoChains.lines[0], `${F}:7: inserted: a new chain starts at seq 1 after seq 6 (${F}:6): seq must increase`)
  t.equal(twoChains.exitCode, 1)

  // Two files of one chain, newest first by mistake
  const dir = t.testdir()
  const audit = createAuditLog({ file: join(dir, 'rot.log'), log: silent })
  for (let i = 0; i < 4; i++) audit.result(`r${i}`, {})
  audit.stop({})
  const all = readFileSync(join(dir, 'rot.log'), 'utf8').split('\n').slice(0, -1)
  const older = { name: 'rot.log.1', text: all.slice(0, 2).join('\n') + '\n' }
  const newer = { name: 'rot.log', text: all.slice(2).join('\n') + '\n' }
  t.same(formatVerifyReport(verifyAuditFiles([older, newer])).lines, ['intact: 5 records in 2 files, seq 1–5'])
  t.same(formatVerifyReport(verifyAuditFiles([newer, older])).lines, [
    'starts at seq 3 (earlier files not given)',
    'rot.log.1:1: reordered: seq 1 comes after seq 5 (rot.log:3)',
    'NOT intact: 1 problem; 5 records in 2 files, seq 1–5'
  ], 'files given newest first: a run of moved records is reported once')

  t.same(formatVerifyReport(verifyAuditFiles([{ name: 'empty', text: '' }])).lines, ['intact: 0 records in 1 file'])
  const many = Array.from({ length: 1002 }, () => 'junk')
  const manyLines = report(F, many).lines
  t.equal(manyLines[1000], '… and 2 more problems')
  t.equal(manyLines[1001], 'NOT intact: 1002 problems; 0 records in 1 file')
})

const verifyCli = async (args: string[], env: Record<string, string> = {}) => await runScript('src/audit/verify-cli.ts', args, env)

t.test('npm run audit:verify is this CLI', async (t) => {
  const run = await new Promise<{ failed: boolean, stdout: string }>((resolve) => {
    execFile('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec npm run --silent audit:verify -- --help'],
      { cwd: fileURLToPath(new URL('../..', import.meta.url)), env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' } },
      (error, stdout) => resolve({ failed: error !== null, stdout }))
  })
  t.notOk(run.failed, 'exit 0')
  t.match(run.stdout, /^usage: audit:verify /)
})

t.test('the CLI: exit 0 when intact, 1 with one line per problem, the key from --key-file or the environment', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'audit.log')
  const keyFile = join(dir, 'chain.key')
  writeFileSync(keyFile, KEY)
  const lines = writeChain(file, KEY)

  t.same(await verifyCli(['--key-file', keyFile, file]), { code: 0, stdout: 'intact: 6 records in 1 file, seq 1–6\n', stderr: '' })
  t.same(await verifyCli([file], { AUDIT_CHAIN_KEY_FILE: keyFile }), { code: 0, stdout: 'intact: 6 records in 1 file, seq 1–6\n', stderr: '' })

  writeFileSync(file, [lines[0], lines[1], lines[3], lines[4], lines[5]].join('\n') + '\n')
  const broken = await verifyCli([`--key-file=${keyFile}`, file])
  t.equal(broken.code, 1)
  t.same(broken.stdout.split('\n'), [
    `${file}:3: removed: 1 record missing before ${file}:3 (seq 3)`,
    'open intents: 1 without a result (outcome unknown: check Synapse; open intents alone do not fail the check)',
    `open intent: request_id "r1" (room.join) seq 2 at ${file}:2`,
    'NOT intact: 1 problem; 5 records in 1 file, seq 1–6',
    ''
  ])

  const unkeyed = await verifyCli([file])
  t.equal(unkeyed.code, 1)
  t.match(unkeyed.stdout, /give it with --key-file/)
})

t.test('the CLI: usage errors and unreadable files are one clear line, exit 2, no stack trace', async (t) => {
  const missing = join(t.testdir(), 'nope.log')
  const none = await verifyCli([])
  t.equal(none.code, 2)
  t.match(none.stderr, /^usage: audit:verify \[--key-file FILE\] \[--checkpoints FILE --public-key FILE\] FILE…/)
  const unknown = await verifyCli(['--keyfile', 'x', 'a.log'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /Unknown option '--keyfile'[^\n]*\nusage: /)
  const noValue = await verifyCli(['a.log', '--key-file'])
  t.equal(noValue.code, 2)
  t.match(noValue.stderr, /usage: /)
  t.same(await verifyCli([missing]), { code: 2, stdout: '', stderr: `cannot read the audit file ${missing}: ENOENT\n` })
  t.same(await verifyCli(['--key-file', missing, 'a.log']), { code: 2, stdout: '', stderr: `cannot read the key file ${missing}: ENOENT\n` })
  const help = await verifyCli(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /^usage: /)
  for (const out of [none, unknown, noValue]) t.notMatch(out.stderr, /\n\s+at /, 'no stack trace')
})

t.test('replayed records are reported, with or without a key: seq must increase across the files given', async (t) => {
  const F = 'audit.log'
  for (const key of [KEY, undefined]) {
    const lines = writeChain(join(t.testdir(), 'audit.log'), key)
    // The file's start record, then records 2–5, copied to its end.
    const replayed = [...lines, ...lines.slice(0, 5)]
    const result = report(F, replayed, key)
    t.equal(result.exitCode, 1, `a replay is not intact (${key === undefined ? 'plain' : 'keyed'})`)
    t.same(result.lines, [
      `${F}:7: inserted: a copy of ${F}:1 (seq 1)`,
      `${F}:8: inserted: a copy of ${F}:2 (seq 2)`,
      `${F}:9: inserted: a copy of ${F}:3 (seq 3)`,
      `${F}:10: inserted: a copy of ${F}:4 (seq 4)`,
      `${F}:11: inserted: a copy of ${F}:5 (seq 5)`,
      'NOT intact: 5 problems; 11 records in 1 file, seq 1–6'
    ])
    // The same replay given as a file of its own, after the real one.
    const twoFiles = formatVerifyReport(verifyAuditFiles([
      { name: 'audit.log.1', text: lines.join('\n') + '\n' },
      { name: 'audit.log', text: lines.slice(0, 5).join('\n') + '\n' }
    ], key))
    t.equal(twoFiles.exitCode, 1)
    t.equal(twoFiles.lines[0], 'audit.log:1: inserted: a copy of audit.log.1:1 (seq 1)')
  }
})

t.test('a start record that does not link to the record before it is reported, whatever its seq', async (t) => {
  const F = 'f'
  const lines = writeChain(join(t.testdir(), 'first.log'), KEY)
  // A second chain from a gateway that could not read back the first (standard output, or a removed file).
  const other = writeChain(join(t.testdir(), 'other.log'), KEY, 'other')
  const result = report(F, [...lines, ...other], KEY)
  t.equal(result.exitCode, 1)
  t.equal(result.lines[0], `${F}:7: inserted: a new chain starts at seq 1 after seq 6 (${F}:6): seq must increase (records replayed from another chain, or a gateway that restarted on standard output or without its audit file and chain head: verify each chain on its own)`)
  t.equal(result.lines[1], `${F}:8: inserted: a second record with seq 2 (the first is at ${F}:2)`)

  // A start record with no predecessor whose seq is higher than everything before it.
  const later = reseal(lines[0] as string, (text) => text.replace('{"seq":1,', '{"seq":7,'), KEY)
  t.same(report(F, [...lines, later], KEY).lines, [
    `${F}:7: inserted: a start record that links to nothing (prev null) after seq 6 (${F}:6)`,
    'NOT intact: 1 problem; 7 records in 1 file, seq 1–7'
  ])
  t.same(report(F, other, KEY).lines, ['intact: 6 records in 1 file, seq 1–6'], 'the very first record may start a chain')
})

t.test('a keyed file verified without its key: the key hint comes first, in one line, not one edited line per record', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'audit.log')
  const audit = createAuditLog({ file, log: silent, chainKey: KEY })
  audit.start({ version: '0.1.0' })
  for (let i = 0; i < 28; i++) {
    audit.intent(`r${i}`, { action: 'room.join' })
    audit.result(`r${i}`, { action: 'room.join', outcome: 'success', status: 200 })
  }
  audit.stop({})
  const lines = readFileSync(file, 'utf8').split('\n').slice(0, -1)
  t.equal(lines.length, 58)

  const run = await verifyCli([file])
  t.equal(run.code, 1)
  t.same(run.stdout.split('\n'), [
    '58 of 58 records do not match plain SHA-256: were they written with AUDIT_CHAIN_KEY_FILE? give it with --key-file FILE (those 58 edited lines are not listed)',
    'NOT intact: 58 problems; 58 records in 1 file, seq 1–58',
    ''
  ])

  // Lines that are wrong whatever the key are still listed, after the hint.
  const withoutOne = lines.filter((_, i) => i !== 10)
  const holed = report('a', withoutOne)
  t.match(holed.lines[0], /^57 of 57 records do not match plain SHA-256: .*--key-file FILE/)
  t.equal(holed.lines[1], 'a:11: removed: 1 record missing before a:11 (seq 11)')

  // With the key, a few edited lines are listed one by one, as before.
  const someEdited = lines.map((line, i) => i < 3 ? line.replace('"version":"0.1.0"', '"version":"9.9.9"').replace('"status":200', '"status":201') : line)
  const edited = report('a', someEdited, KEY)
  t.same(edited.lines.slice(0, 2), ['a:1: edited: the hash does not match the content', 'a:3: edited: the hash does not match the content'])
})
