/**
 * npm run audit:verify -- [--key-file FILE] FILE…   (in the image: node dist/audit/verify-cli.js …)
 * Exit 0: intact; 1: problems found (one line each); 2: usage error or unreadable file.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { formatVerifyReport, verifyAuditFiles } from './verify.js'

const USAGE = 'usage: audit:verify [--key-file FILE] FILE… (oldest first, e.g. audit.log.2 audit.log.1 audit.log; AUDIT_CHAIN_KEY_FILE also gives the key)'

function read (file: string, what: string): Buffer | { error: string } {
  try {
    return readFileSync(file)
  } catch (err) {
    return { error: `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }
  }
}

function main (argv: string[], env: NodeJS.ProcessEnv): number {
  let values: { 'key-file'?: string | undefined, help?: boolean | undefined }
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: { 'key-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true }))
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
  const files: Array<{ name: string, text: string }> = []
  for (const name of positionals) {
    const content = read(name, 'the audit file')
    if (!Buffer.isBuffer(content)) {
      console.error(content.error)
      return 2
    }
    files.push({ name, text: content.toString('utf8') })
  }
  const { lines, exitCode } = formatVerifyReport(verifyAuditFiles(files, key))
  console.log(lines.join('\n'))
  return exitCode
}

process.exitCode = main(process.argv.slice(2), process.env)
