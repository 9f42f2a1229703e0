/**
 * `npm run token -- [--sub S] [--roles a,b] [--org O] [--ttl SECONDS]`: prints an HS256 token
 * signed with JWT_SECRET or JWT_SECRET_FILE, for trying the gateway (the demo, the compose
 * stack). Your organisation's IdP issues the real ones.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { helpdeskClaims, signJwt } from './tokens.js'

const USAGE = 'usage: JWT_SECRET_FILE=<file> npm run -s token -- [--sub <caller>] [--roles <role,role>] [--org <org>] [--ttl <seconds, 1 to 31536000>]'

function refuse (problem: string): never {
  process.stderr.write(`${problem}\n${USAGE}\n`)
  process.exit(2)
}

let values
try {
  values = parseArgs({
    options: {
      sub: { type: 'string', default: 'cli-user' },
      roles: { type: 'string', default: 'matrix-admin' },
      org: { type: 'string', default: 'example' },
      ttl: { type: 'string', default: '3600' },
      help: { type: 'boolean', short: 'h', default: false }
    },
    allowPositionals: false
  }).values
} catch (error) {
  refuse((error as Error).message.split('\n')[0] as string)
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
// A ttl that is not a whole number would sign exp: NaN, which JSON turns into exp: null.
if (!/^[0-9]{1,8}$/.test(values.ttl) || Number(values.ttl) < 1 || Number(values.ttl) > 31536000) {
  refuse('--ttl must be a whole number of seconds from 1 to 31536000')
}
const roles = values.roles.split(',').map((role) => role.trim()).filter((role) => role !== '')
if (roles.length === 0) refuse('--roles must name at least one role')
if (values.sub === '') refuse('--sub must not be empty')

const file = process.env.JWT_SECRET_FILE
let secret = process.env.JWT_SECRET
if (file !== undefined && file !== '') {
  try {
    secret = readFileSync(file, 'utf8').replace(/\r?\n$/, '')
  } catch (error) {
    refuse(`JWT_SECRET_FILE names a file that cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}
if (secret === undefined || secret === '') refuse('Set JWT_SECRET or JWT_SECRET_FILE to the gateway\'s HMAC secret.')

const claims = helpdeskClaims({ sub: values.sub, org: values.org, roles }, Number(values.ttl))
process.stdout.write(`${signJwt({ alg: 'HS256' }, claims, secret)}\n`)
