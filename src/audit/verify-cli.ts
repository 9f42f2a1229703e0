/**
 * npm run audit:verify -- [--key-file FILE] [--checkpoints FILE --public-key FILE] FILE…
 * (in the image: node dist/audit/verify-cli.js …)
 * Exit 0: intact; 1: problems found (one line each); 2: usage error or unreadable file.
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { notAnEd25519Key, readCheckpoints } from './checkpoint.js'
import { formatVerifyReport, verifyAuditFiles, type CheckpointFile } from './verify.js'

const USAGE = 'usage: audit:verify [--key-file FILE] [--checkpoints FILE --public-key FILE] FILE… (oldest first, e.g. audit.log.2 audit.log.1 audit.log; AUDIT_CHAIN_KEY_FILE also gives the key)'

function read (file: string, what: string): Buffer | { error: string } {
  try {
    return readFileSync(file)
  } catch (err) {
    return { error: `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }
  }
}

/** The checkpoint key's public half (a private key file works too: its public half is used). */
function readPublicKey (file: string): { key: KeyObject } | { error: string } {
  const content = read(file, 'the public key file')
  if (!Buffer.isBuffer(content)) return content
  let key: KeyObject
  try {
    key = createPublicKey(content)
  } catch {
    return { error: `the public key file ${file} holds no PEM key (make it with: openssl pkey -in checkpoint.key -pubout -out checkpoint.pub)` }
  }
  const wrong = notAnEd25519Key(key)
  return wrong === undefined ? { key } : { error: `the public key file ${file} holds ${wrong}` }
}

function main (argv: string[], env: NodeJS.ProcessEnv): number {
  let values: { 'key-file'?: string | undefined, checkpoints?: string | undefined, 'public-key'?: string | undefined, help?: boolean | undefined }
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: { 'key-file': { type: 'string' }, checkpoints: { type: 'string' }, 'public-key': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true
    }))
  } catch (err) {
    console.error(`${(err as Error).message.split('\n')[0]}\n${USAGE}`)
    return 2
  }
  if (values.help === true) {
    console.log(USAGE)
    return 0
  }
  if (positionals.length === 0) {
    console.error(USAGE)
    return 2
  }
  const keyFile = values['key-file'] ?? (env.AUDIT_CHAIN_KEY_FILE === '' ? undefined : env.AUDIT_CHAIN_KEY_FILE)
  let key: Buffer | undefined
  if (keyFile !== undefined) {
    // The key's bytes as they are in the file, exactly as the gateway reads AUDIT_CHAIN_KEY_FILE.
    const content = read(keyFile, 'the key file')
    if (!Buffer.isBuffer(content)) {
      console.error(content.error)
      return 2
    }
    key = content
  }
  if ((values.checkpoints === undefined) !== (values['public-key'] === undefined)) {
    console.error(`--checkpoints and --public-key go together: the checkpoints are checked with the public key\n${USAGE}`)
    return 2
  }
  let checkpointFile: CheckpointFile | undefined
  if (values.checkpoints !== undefined && values['public-key'] !== undefined) {
    const publicKey = readPublicKey(values['public-key'])
    if ('error' in publicKey) {
      console.error(publicKey.error)
      return 2
    }
    const content = read(values.checkpoints, 'the checkpoint file')
    if (!Buffer.isBuffer(content)) {
      console.error(content.error)
      return 2
    }
    checkpointFile = { name: values.checkpoints, checkpoints: readCheckpoints(content.toString('utf8'), publicKey.key) }
  }
  const files: Array<{ name: string, text: string }> = []
  for (const name of positionals) {
    const content = read(name, 'the audit file')
    if (!Buffer.isBuffer(content)) {
      console.error(content.error)
      return 2
    }
    files.push({ name, text: content.toString('utf8') })
  }
  const { lines, exitCode } = formatVerifyReport(verifyAuditFiles(files, key, checkpointFile))
  console.log(lines.join('\n'))
  return exitCode
}

process.exitCode = main(process.argv.slice(2), process.env)
