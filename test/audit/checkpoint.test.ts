/**
 * Signed checkpoints (AUDIT_CHECKPOINT_FILE): the audit log appends them while the chain grows
 * and at stop; `npm run audit:verify -- --checkpoints FILE --public-key FILE` then sees a cut
 * tail, a rewritten chain and a forged checkpoint. The gateway runs as a real process, and the
 * key pair is made with openssl as the documentation says.
 */
import { execFileSync } from 'node:child_process'
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto'
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import t from 'tap'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { chainHash, seal, unsealed } from '../../src/audit/chain.js'
import { checkpointKeyId, CHECKPOINT_ORIGIN, readCheckpoints, signCheckpoint } from '../../src/audit/checkpoint.js'
import { createAuditLog } from '../../src/audit/log.js'
import { formatVerifyReport, verifyAuditFiles } from '../../src/audit/verify.js'
import { loadConfig } from '../../src/config.js'
import { startHarness } from '../helpers/harness.js'
import { act, joinPath, recordsOf, startGateway, until, verifyCli } from '../helpers/audit.js'

const silent = pino({ level: 'silent' })

/** An Ed25519 key pair as the documentation makes it: openssl genpkey, then openssl pkey -pubout. */
function opensslKeyPair (dir: string, name = 'checkpoint'): { privateFile: string, publicFile: string } {
  const privateFile = join(dir, `${name}.key`)
  const publicFile = join(dir, `${name}.pub`)
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', privateFile])
  execFileSync('openssl', ['pkey', '-in', privateFile, '-pubout', '-out', publicFile])
  return { privateFile, publicFile }
}

/** The verifier as a module, in this process (the CLI's own runs are the slow part of a test). */
function verifyInProcess (file: string, checkpointFile?: string, publicFile?: string) {
  const checkpoints = checkpointFile === undefined || publicFile === undefined
    ? undefined
    : { name: checkpointFile, checkpoints: readCheckpoints(readFileSync(checkpointFile, 'utf8'), readKey(publicFile)) }
  return formatVerifyReport(verifyAuditFiles([{ name: file, text: readFileSync(file, 'utf8') }], undefined, checkpoints))
}

t.test('the checkpoint is a C2SP signed note: origin, record count, base64 head hash, time, then an Ed25519 signature line', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const hash = 'ab'.repeat(32)
  const note = signCheckpoint({ seq: 42, hash, time: '2026-12-05T07:00:00.000Z' }, privateKey)
  const [body, signatures] = note.split('\n\n') as [string, string]
  t.same(body.split('\n'), [CHECKPOINT_ORIGIN, '42', Buffer.from(hash, 'hex').toString('base64'), 'time 2026-12-05T07:00:00.000Z'])
  t.match(signatures, new RegExp(`^\u2014 ${CHECKPOINT_ORIGIN} [A-Za-z0-9+/]+=*$`))
  const signatureBytes = Buffer.from(signatures.split(' ')[2] as string, 'base64')
  t.equal(signatureBytes.length, 4 + 64, 'key ID ‖ Ed25519 signature')
  t.same(signatureBytes.subarray(0, 4), checkpointKeyId(publicKey))
  t.ok(note.endsWith('\n\n'), 'each note ends with a blank line, so notes can follow each other')
  t.same(readCheckpoints(note + note, publicKey), [
    { line: 1, ok: true, head: { seq: 42, hash, time: '2026-12-05T07:00:00.000Z' } },
    { line: 8, ok: true, head: { seq: 42, hash, time: '2026-12-05T07:00:00.000Z' } }
  ])
  t.match(readCheckpoints(note, generateKeyPairSync('ed25519').publicKey), [{ line: 1, ok: false, kind: 'forged', detail: /^not signed by this public key/ }])
  t.match(readCheckpoints(note.replace('\n42\n', '\n43\n'), publicKey), [{ ok: false, kind: 'forged', detail: /does not verify/ }])
  t.match(readCheckpoints(note.slice(0, 60), publicKey), [{ ok: false, kind: 'malformed', detail: /without a signature/ }])
})

t.test('the audit log writes a checkpoint when its head moved (never twice for one head), and one at stop', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'audit.log')
  const checkpoints = join(dir, 'audit.checkpoints')
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const audit = createAuditLog({ file, log: silent, checkpoint: { file: checkpoints, privateKey, intervalMs: 5 } })
  const heads = () => {
    let text = ''
    try { text = readFileSync(checkpoints, 'utf8') } catch {}
    return readCheckpoints(text, publicKey).map((checkpoint) => checkpoint.ok ? checkpoint.head.seq : -1)
  }
  audit.start({ version: '0.1.0' })
  await until(() => heads().includes(1), 'a checkpoint of seq 1')
  audit.intent('r1', { action: 'room.join' })
  audit.result('r1', { action: 'room.join', outcome: 'success' })
  await until(() => heads().includes(3), 'a checkpoint of seq 3')
  audit.intent('r2', { action: 'room.join' })
  audit.stop({})
  t.same(heads(), [1, 3, 5], 'one checkpoint per head, the last at stop')
  const last = readCheckpoints(readFileSync(checkpoints, 'utf8'), publicKey).at(-1)
  t.match(last, { ok: true, head: { seq: 5, hash: recordsOf(file).at(-1)?.hash } }, 'the last checkpoint vouches for the stop record')
  const report = verifyAuditFiles([{ name: 'audit.log', text: readFileSync(file, 'utf8') }], undefined, { name: 'cp', checkpoints: readCheckpoints(readFileSync(checkpoints, 'utf8'), publicKey) })
  t.same(formatVerifyReport(report).lines, [
    'open intents: 1 without a result (outcome unknown: check Synapse; open intents alone do not fail the check)',
    'open intent: request_id "r2" (room.join) seq 4 at audit.log:4',
    'checkpoints: 3 signed checkpoints verified in cp, the latest vouching for seq 5',
    'intact: 5 records in 1 file, seq 1–5'
  ])
  t.equal(formatVerifyReport(report).exitCode, 0)
})

t.test('a checkpoint file that cannot be written: one error line, records still written, checkpoints again once it can', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'audit.log')
  const checkpoints = join(dir, 'later', 'audit.checkpoints')
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } })
  const audit = createAuditLog({ file, log, checkpoint: { file: checkpoints, privateKey, intervalMs: 5 } })
  t.equal(audit.start({}), true)
  await until(() => lines.some((line) => line.includes('cannot write the audit checkpoint')), 'the error line')
  t.equal(audit.result('r1', {}), true, 'the audit goes on')
  t.equal(lines.filter((line) => line.includes('cannot write the audit checkpoint')).length, 1, 'logged once, not at every tick')
  mkdirSync(join(dir, 'later'))
  await until(() => lines.some((line) => line.includes('audit checkpoints written again')), 'the recovery line')
  audit.stop({})
  t.match(readCheckpoints(readFileSync(checkpoints, 'utf8'), publicKey).at(-1), { ok: true, head: { seq: 3 } })
})

t.test('configuration: both variables or neither, an Ed25519 private key, an audit file; one line naming the variable', async (t) => {
  const dir = t.testdir()
  const { privateFile, publicFile } = opensslKeyPair(dir)
  const rsaFile = join(dir, 'rsa.key')
  writeFileSync(rsaFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }))
  const base = { SYNAPSE_URL: 'http://127.0.0.1:8008', SYNAPSE_ADMIN_TOKEN: 'syt_x', SYNAPSE_SERVER_NAME: 'example.com', JWT_SECRET: 'a'.repeat(32), AUDIT_LOG_FILE: join(dir, 'audit.log') }
  const refusal = (env: Record<string, string | undefined>) => {
    try {
      loadConfig({ ...base, ...env })
    } catch (error) {
      return (error as Error).message
    }
    return 'accepted'
  }
  const checkpointFile = join(dir, 'audit.checkpoints')
  t.match(refusal({ AUDIT_CHECKPOINT_FILE: checkpointFile }), /^Invalid configuration: AUDIT_CHECKPOINT_KEY_FILE is required with AUDIT_CHECKPOINT_FILE: [^\n]*openssl genpkey -algorithm ed25519[^\n]*$/)
  t.match(refusal({ AUDIT_CHECKPOINT_KEY_FILE: privateFile }), /^Invalid configuration: AUDIT_CHECKPOINT_FILE is required with AUDIT_CHECKPOINT_KEY_FILE[^\n]*$/)
  t.match(refusal({ AUDIT_CHECKPOINT_FILE: checkpointFile, AUDIT_CHECKPOINT_KEY_FILE: rsaFile }), /^Invalid configuration: AUDIT_CHECKPOINT_KEY_FILE holds an rsa key, not Ed25519[^\n]*$/)
  t.match(refusal({ AUDIT_CHECKPOINT_FILE: checkpointFile, AUDIT_CHECKPOINT_KEY_FILE: publicFile }), /^Invalid configuration: AUDIT_CHECKPOINT_KEY_FILE must hold a PEM private key[^\n]*$/)
  t.match(refusal({ AUDIT_CHECKPOINT_FILE: checkpointFile, AUDIT_CHECKPOINT_KEY_FILE: join(dir, 'nope') }), /^Invalid configuration: AUDIT_CHECKPOINT_KEY_FILE names a file that cannot be read \(ENOENT\)$/)
  t.match(refusal({ AUDIT_CHECKPOINT_FILE: checkpointFile, AUDIT_CHECKPOINT_KEY_FILE: privateFile, AUDIT_LOG_FILE: undefined }), /^Invalid configuration: AUDIT_CHECKPOINT_FILE needs AUDIT_LOG_FILE/)
  t.match(refusal({ AUDIT_CHECKPOINT_FILE: checkpointFile, AUDIT_CHECKPOINT_KEY_FILE: privateFile, AUDIT_CHECKPOINT_INTERVAL_S: '0' }), /^Invalid configuration: AUDIT_CHECKPOINT_INTERVAL_S must be a whole number from 1 to 86400$/)
  const config = loadConfig({ ...base, AUDIT_CHECKPOINT_FILE: checkpointFile, AUDIT_CHECKPOINT_KEY_FILE: privateFile })
  t.match(config.auditCheckpoint, { file: checkpointFile, intervalMs: 60_000 })
  t.equal(loadConfig(base).auditCheckpoint, undefined)
})

t.test('a real gateway signs checkpoints; the verifier sees a good run, a cut tail, a rewritten chain and a forged checkpoint', async (t) => {
  const h = await startHarness(t)
  const dir = t.testdir()
  const file = join(dir, 'audit.log')
  const checkpoints = join(dir, 'audit.checkpoints')
  const { privateFile, publicFile } = opensslKeyPair(dir)
  const policy = join(dir, 'policy.yaml')
  writeFileSync(policy, 'rules:\n  - name: admins-do-everything\n    roles: [matrix-admin]\n    actions: ["*"]\n')
  const g = await startGateway(t, h, { AUDIT_LOG_FILE: file, AUDIT_CHECKPOINT_FILE: checkpoints, AUDIT_CHECKPOINT_KEY_FILE: privateFile, POLICY_FILE: policy })
  t.match(g.out.stdout, /"checkpoints":"signed, to [^"]*audit\.checkpoints every 60 s while the chain grows, and at shutdown"/, 'the start-up summary says so')
  for (let i = 0; i < 3; i++) {
    const res = await act(g.url, 'POST', joinPath(RECORDED_ROOMS.publicTest), { token: h.token(), requestId: `cp-${i}`, body: { user_id: '@alice:test.local' } })
    t.equal(res.status, 200)
  }
  g.child.kill('SIGTERM')
  t.equal((await g.exited).code, 0)

  const records = recordsOf(file)
  const lastSeq = records.at(-1)?.seq as number
  t.equal(records.at(-1)?.event, 'stop')
  t.equal(readCheckpoints(readFileSync(checkpoints, 'utf8'), readKey(publicFile)).length, 1, 'one checkpoint: at shutdown (the interval did not come round)')
  const args = ['--checkpoints', checkpoints, '--public-key', publicFile]

  const good = await verifyCli([...args, file])
  t.equal(good.code, 0, good.stdout)
  t.same(good.lines.slice(-2), [
    `checkpoints: 1 signed checkpoint verified in ${checkpoints}, the latest vouching for seq ${lastSeq}`,
    `intact: ${lastSeq} records in 1 file, seq 1–${lastSeq}`
  ])

  // Cut the tail: the last three records go, and what is left is a perfectly good chain.
  const lines = readFileSync(file, 'utf8').split('\n').slice(0, -1)
  writeFileSync(file, lines.slice(0, -3).join('\n') + '\n')
  t.equal(verifyInProcess(file).exitCode, 0, 'without the checkpoints, a cut tail passes')
  const cut = await verifyCli([...args, file])
  t.equal(cut.code, 1)
  const [signed] = readCheckpoints(readFileSync(checkpoints, 'utf8'), readKey(publicFile))
  t.equal(cut.lines[0], `${file}:${lastSeq - 3}: cut: the audit ends at seq ${lastSeq - 3} but checkpoint at ${checkpoints}:1 vouches for seq ${lastSeq} (3 records cut from the tail; signed ${signed?.ok === true ? signed.head.time : '?'})`)
  t.match(cut.lines.at(-1), /^NOT intact: 1 problem;/)

  // Rewrite the chain (plain SHA-256 can be recomputed by anyone) from a record on: the checkpoint disagrees.
  const rewritten = [...lines]
  for (let i = 2; i < rewritten.length; i++) {
    const previousHash = JSON.parse(rewritten[i - 1] as string).hash as string
    const unsigned = unsealed(rewritten[i] as string).replace(/"prev":"[0-9a-f]{64}"\}$/, `"prev":"${previousHash}"}`).replace('"cp-1"', '"cp-9"')
    rewritten[i] = seal(unsigned, chainHash(unsigned, undefined)).slice(0, -1)
  }
  writeFileSync(file, rewritten.join('\n') + '\n')
  t.equal(verifyInProcess(file).exitCode, 0, 'without the checkpoints, a recomputed chain passes')
  const contradicted = verifyInProcess(file, checkpoints, publicFile)
  t.equal(contradicted.exitCode, 1)
  t.match(contradicted.lines[0], new RegExp(`^${file}:${lastSeq}: contradicted: checkpoint at ${checkpoints}:1 vouches for seq ${lastSeq} with hash [0-9a-f]{16}…, this record's is [0-9a-f]{16}…`))

  // A forged checkpoint: signed with another key, or the real one edited to vouch for more.
  writeFileSync(file, lines.join('\n') + '\n')
  const other = opensslKeyPair(dir, 'other')
  const genuine = readFileSync(checkpoints, 'utf8')
  appendFileSync(checkpoints, signCheckpoint({ seq: lastSeq + 100, hash: '00'.repeat(32), time: new Date().toISOString() }, readKey(other.privateFile, true)))
  const foreignKey = verifyInProcess(file, checkpoints, publicFile)
  t.equal(foreignKey.exitCode, 1)
  t.match(foreignKey.lines, [`${checkpoints}:8: forged: not signed by this public key (key ID ${checkpointKeyId(readKey(publicFile)).toString('hex')})`])
  t.notMatch(foreignKey.lines.join('\n'), /cut:/, 'an unverified checkpoint vouches for nothing')
  writeFileSync(checkpoints, genuine.replace(`\n${lastSeq}\n`, `\n${lastSeq + 5}\n`))
  const edited = verifyInProcess(file, checkpoints, publicFile)
  t.equal(edited.exitCode, 1)
  t.ok(edited.lines.some((line) => line.startsWith(`${checkpoints}:1: forged: the signature does not verify with this public key`)), 'the edited checkpoint is forged')
  t.ok(edited.lines.some((line) => /: cut: the audit ends with the stop record at seq \d+, but no checkpoint in .* vouches for it/.test(line)), 'and the stop record is vouched for by none')
  // The checkpoint file emptied (or cut back before the shutdown's checkpoint): the stop record says so.
  writeFileSync(checkpoints, '')
  const emptied = verifyInProcess(file, checkpoints, publicFile)
  t.equal(emptied.exitCode, 1, 'an emptied checkpoint file does not pass')
  t.match(emptied.lines.join('\n'), /cut: the audit ends with the stop record at seq \d+, but no checkpoint .* \(0 signed checkpoints;/)

  const usage = await verifyCli(['--checkpoints', checkpoints, file])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /^--checkpoints and --public-key go together/)
  const wrongKeyType = await verifyCli(['--checkpoints', checkpoints, '--public-key', checkpoints, file])
  t.equal(wrongKeyType.code, 2)
  t.match(wrongKeyType.stderr, /holds no PEM key \(make it with: openssl pkey -in checkpoint\.key -pubout -out checkpoint\.pub\)/)
})

function readKey (file: string, isPrivate = false) {
  const pem = readFileSync(file)
  return isPrivate ? createPrivateKey(pem) : createPublicKey(pem)
}
