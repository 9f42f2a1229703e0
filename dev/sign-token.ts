/**
 * `npm run token -- [--sub S] [--roles a,b] [--org O] [--ttl SECONDS]`: prints an HS256 token
 * signed with JWT_SECRET or JWT_SECRET_FILE, for trying the gateway (e.g. the compose stack).
 * Your organisation's IdP issues the real ones.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { helpdeskClaims, signJwt } from './tokens.js'

const { values } = parseArgs({
  options: {
    sub: { type: 'string', default: 'cli-user' },
    roles: { type: 'string', default: 'matrix-admin' },
    org: { type: 'string', default: 'example' },
    ttl: { type: 'string', default: '3600' }
  }
})
const file = process.env.JWT_SECRET_FILE
const secret = file !== undefined ? readFileSync(file, 'utf8').replace(/\r?\n$/, '') : process.env.JWT_SECRET
if (secret === undefined || secret === '') {
  process.stderr.write('Set JWT_SECRET or JWT_SECRET_FILE to the gateway\'s HMAC secret.\n')
  process.exit(1)
}
const claims = helpdeskClaims({ sub: values.sub, org: values.org, roles: values.roles.split(',') }, Number(values.ttl))
process.stdout.write(`${signJwt({ alg: 'HS256' }, claims, secret)}\n`)
