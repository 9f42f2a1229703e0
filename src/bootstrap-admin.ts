/**
 * Creates the gateway's Synapse admin account and writes its access token to a file: the one
 * step before the gateway can start. Uses Synapse's shared-secret registration
 * (GET/POST /_synapse/admin/v1/register), which returns a token directly; on a re-run it keeps
 * a token that still works, or logs the existing account in again with its saved password.
 * Run `node dist/bootstrap-admin.js --help` (or `npm run bootstrap -- --help`) for the options.
 */
import { createHmac, randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { request } from 'undici'

export interface BootstrapOptions {
  synapseUrl: string
  sharedSecret: string
  username: string
  tokenFile: string
  passwordFile: string
  owner?: { uid: number, gid: number } | undefined
  /** Also write a Kubernetes Secret manifest holding both files, for `kubectl apply -f`. */
  secretManifest?: { file: string, name: string } | undefined
}

export const USAGE = `Usage: node dist/bootstrap-admin.js [options]     (from a checkout: npm run bootstrap -- [options])

Creates the gateway's Synapse admin account (shared-secret registration) and writes its access
token to a file for SYNAPSE_ADMIN_TOKEN_FILE. Safe to run again: a token that still works is
kept; an account that exists already is logged in with the password saved next to the token.

Options (each also read from the environment variable in brackets):
  --synapse-url URL            Synapse's client URL [SYNAPSE_URL] (default http://127.0.0.1:8008)
  --shared-secret-file FILE    a file holding Synapse's registration_shared_secret
                               [REGISTRATION_SHARED_SECRET_FILE]
  --synapse-config FILE        or Synapse's homeserver.yaml, to read registration_shared_secret
                               from [SYNAPSE_CONFIG_FILE]
  --token-file FILE            where to write the admin token (required) [TOKEN_FILE]
  --password-file FILE         the account's password, written on registration
                               [PASSWORD_FILE] (default: gateway_admin_password next to the token)
  --username NAME              the account's localpart [ADMIN_USERNAME] (default gateway-admin)
  --owner UID:GID              give both files to this owner, e.g. 1000:1000 for the image's
                               node user (needs root) [FILE_OWNER] (default: leave as created)
  --secret-manifest FILE       also write a Kubernetes Secret manifest with both, named by
                               --secret-name [SECRET_MANIFEST_FILE] (Kubernetes Job)
  --secret-name NAME           [SECRET_NAME] (default synapse-admin-gateway-admin)
  -h, --help                   show this text

Example (bare metal, Synapse on this host):
  node dist/bootstrap-admin.js --synapse-config /etc/matrix-synapse/homeserver.yaml \\
    --token-file /etc/synapse-admin-gateway/synapse_admin_token
`

/** A failure the operator can act on: printed as one line, never with a stack trace. */
export class BootstrapError extends Error {}

async function call (url: string, method: 'GET' | 'POST', body?: unknown, token?: string): Promise<{ status: number, json: Record<string, unknown> }> {
  let response
  try {
    response = await request(url, {
      method,
      headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: 10_000,
      bodyTimeout: 10_000
    })
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message
    throw new BootstrapError(`cannot reach Synapse at ${new URL(url).origin} (${reason}); is --synapse-url right and Synapse running?`)
  }
  const text = await response.body.text()
  let json: Record<string, unknown> = {}
  try { json = JSON.parse(text) as Record<string, unknown> } catch {}
  return { status: response.statusCode, json }
}

/** registration_shared_secret from a homeserver.yaml, without a YAML parser. */
export function sharedSecretFrom (homeserverYaml: string): string {
  const match = /^registration_shared_secret:\s*["']?([^"'\n]+?)["']?\s*$/m.exec(homeserverYaml)
  if (match === null) {
    throw new BootstrapError('homeserver.yaml has no registration_shared_secret (with registration_shared_secret_path, pass that file as --shared-secret-file)')
  }
  return match[1] as string
}

export function registrationMac (sharedSecret: string, nonce: string, username: string, password: string, admin: boolean): string {
  return createHmac('sha1', sharedSecret)
    .update(`${nonce}\x00${username}\x00${password}\x00${admin ? 'admin' : 'notadmin'}`)
    .digest('hex')
}

function writeSecret (file: string, value: string, owner: BootstrapOptions['owner']): void {
  try {
    writeFileSync(file, `${value}\n`, { mode: 0o600 })
    chmodSync(file, 0o600) // the mode above applies only when the file is created
    if (owner !== undefined) chownSync(file, owner.uid, owner.gid)
  } catch (error) {
    throw new BootstrapError(`cannot write ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}

function readTrimmed (file: string): string {
  try {
    return readFileSync(file, 'utf8').trim()
  } catch (error) {
    throw new BootstrapError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}

/** Returns what it did: kept a working token, registered the account, or logged in again. */
export async function bootstrapAdmin (options: BootstrapOptions): Promise<'kept' | 'registered' | 'logged-in'> {
  const result = await ensureToken(options)
  if (options.secretManifest !== undefined) {
    const data: Record<string, string> = {}
    for (const [key, file] of [['synapse_admin_token', options.tokenFile], ['gateway_admin_password', options.passwordFile]] as const) {
      if (existsSync(file)) data[key] = Buffer.from(readTrimmed(file)).toString('base64')
    }
    const manifest = { apiVersion: 'v1', kind: 'Secret', metadata: { name: options.secretManifest.name }, type: 'Opaque', data }
    writeSecret(options.secretManifest.file, JSON.stringify(manifest), options.owner)
  }
  return result
}

async function ensureToken (options: BootstrapOptions): Promise<'kept' | 'registered' | 'logged-in'> {
  const base = options.synapseUrl.replace(/\/+$/, '')
  const existing = existsSync(options.tokenFile) ? readTrimmed(options.tokenFile) : ''
  if (existing !== '' && (await call(`${base}/_matrix/client/v3/account/whoami`, 'GET', undefined, existing)).status === 200) return 'kept'
  const { json: nonceAnswer } = await call(`${base}/_synapse/admin/v1/register`, 'GET')
  const nonce = nonceAnswer.nonce
  if (typeof nonce !== 'string') throw new BootstrapError('Synapse did not give a registration nonce: is registration_shared_secret set in homeserver.yaml?')
  const savedPassword = existsSync(options.passwordFile) ? readTrimmed(options.passwordFile) : undefined
  const password = savedPassword ?? randomBytes(24).toString('base64url')
  const registered = await call(`${base}/_synapse/admin/v1/register`, 'POST', {
    nonce,
    username: options.username,
    password,
    admin: true,
    mac: registrationMac(options.sharedSecret, nonce, options.username, password, true)
  })
  if (registered.status === 200 && typeof registered.json.access_token === 'string') {
    writeSecret(options.passwordFile, password, options.owner)
    writeSecret(options.tokenFile, registered.json.access_token, options.owner)
    return 'registered'
  }
  if (registered.json.errcode !== 'M_USER_IN_USE') {
    const hint = registered.status === 403 ? ': the shared secret is not this Synapse\'s registration_shared_secret' : ''
    throw new BootstrapError(`registration failed: HTTP ${registered.status} ${String(registered.json.errcode ?? '')}${hint}`)
  }
  if (savedPassword === undefined) {
    throw new BootstrapError(`the account ${options.username} exists but ${options.passwordFile} (its password) does not; give its password file with --password-file, or choose another --username`)
  }
  const login = await call(`${base}/_matrix/client/v3/login`, 'POST', {
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: options.username },
    password,
    initial_device_display_name: 'synapse-admin-gateway'
  })
  if (login.status !== 200 || typeof login.json.access_token !== 'string') {
    throw new BootstrapError(`the account ${options.username} exists but logging in failed (HTTP ${login.status}); is ${options.passwordFile} its password?`)
  }
  writeSecret(options.tokenFile, login.json.access_token, options.owner)
  return 'logged-in'
}

/** The options from the command line, falling back to the environment; `help` when asked for. */
export function bootstrapOptionsFrom (args: string[], env: Record<string, string | undefined>): BootstrapOptions | 'help' {
  let values
  try {
    values = parseArgs({
      args,
      options: {
        'synapse-url': { type: 'string' },
        'shared-secret-file': { type: 'string' },
        'synapse-config': { type: 'string' },
        'token-file': { type: 'string' },
        'password-file': { type: 'string' },
        username: { type: 'string' },
        owner: { type: 'string' },
        'secret-manifest': { type: 'string' },
        'secret-name': { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    }).values
  } catch (error) {
    throw new BootstrapError(`${(error as Error).message.split('\n')[0] ?? ''} (see --help)`)
  }
  if (values.help === true) return 'help'
  const setting = (flag: keyof typeof values, variable: string) => {
    const value = (values[flag] as string | undefined) ?? env[variable]
    return value === '' ? undefined : value
  }
  const tokenFile = setting('token-file', 'TOKEN_FILE')
  if (tokenFile === undefined) throw new BootstrapError('--token-file (or TOKEN_FILE) is required: where to write the admin token (see --help)')
  const secretFile = setting('shared-secret-file', 'REGISTRATION_SHARED_SECRET_FILE')
  const synapseConfig = setting('synapse-config', 'SYNAPSE_CONFIG_FILE')
  if ((secretFile === undefined) === (synapseConfig === undefined)) {
    throw new BootstrapError('give exactly one of --shared-secret-file or --synapse-config (or REGISTRATION_SHARED_SECRET_FILE / SYNAPSE_CONFIG_FILE) (see --help)')
  }
  const sharedSecret = secretFile !== undefined ? readTrimmed(secretFile) : sharedSecretFrom(readTrimmed(synapseConfig as string))
  if (sharedSecret === '') throw new BootstrapError(`${secretFile ?? ''} is empty`)
  const synapseUrl = setting('synapse-url', 'SYNAPSE_URL') ?? 'http://127.0.0.1:8008'
  if (!/^https?:\/\/[^\s/?#]+/.test(synapseUrl)) throw new BootstrapError('--synapse-url must look like http://127.0.0.1:8008')
  const ownerText = setting('owner', 'FILE_OWNER')
  const owner = ownerText === undefined ? undefined : /^(\d+):(\d+)$/.exec(ownerText)
  if (owner === null) throw new BootstrapError('--owner must look like 1000:1000 (numeric uid:gid)')
  const manifestFile = setting('secret-manifest', 'SECRET_MANIFEST_FILE')
  return {
    synapseUrl,
    sharedSecret,
    username: setting('username', 'ADMIN_USERNAME') ?? 'gateway-admin',
    tokenFile,
    passwordFile: setting('password-file', 'PASSWORD_FILE') ?? join(dirname(tokenFile), 'gateway_admin_password'),
    owner: owner === undefined ? undefined : { uid: Number(owner[1]), gid: Number(owner[2]) },
    secretManifest: manifestFile === undefined ? undefined : { file: manifestFile, name: setting('secret-name', 'SECRET_NAME') ?? 'synapse-admin-gateway-admin' }
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const options = bootstrapOptionsFrom(process.argv.slice(2), process.env)
    if (options === 'help') {
      process.stdout.write(USAGE)
    } else {
      const result = await bootstrapAdmin(options)
      process.stdout.write(`gateway admin account ${options.username}: ${result}; token in ${options.tokenFile}\n`)
    }
  } catch (error) {
    const message = error instanceof BootstrapError ? error.message : `unexpected error: ${(error as Error).message}`
    process.stderr.write(`bootstrap: ${message}\n`)
    process.exitCode = 1
  }
}
