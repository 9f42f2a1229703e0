/**
 * Creates the gateway's Synapse admin account and writes its access token to a file, for the
 * compose stack (docker-compose.yml, service `bootstrap`). Uses Synapse's shared-secret
 * registration (GET/POST /_synapse/admin/v1/register), which returns a token directly; on a
 * re-run it keeps a token that still works, or logs in again with the saved password.
 *
 *   node dist/bootstrap-admin.js
 *   SYNAPSE_URL (http://synapse:8008), SYNAPSE_CONFIG_FILE (/synapse-data/homeserver.yaml, for
 *   registration_shared_secret), ADMIN_USERNAME (gateway-admin), TOKEN_FILE
 *   (/secrets/synapse_admin_token), PASSWORD_FILE (/secrets/gateway_admin_password),
 *   FILE_OWNER (uid:gid the files are given to; 1000:1000, the image's node user)
 */
import { createHmac, randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { request } from 'undici'

export interface BootstrapOptions {
  synapseUrl: string
  sharedSecret: string
  username: string
  tokenFile: string
  passwordFile: string
  owner?: { uid: number, gid: number } | undefined
}

async function call (url: string, method: 'GET' | 'POST', body?: unknown, token?: string): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await request(url, {
    method,
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: 10_000,
    bodyTimeout: 10_000
  })
  const text = await response.body.text()
  let json: Record<string, unknown> = {}
  try { json = JSON.parse(text) as Record<string, unknown> } catch {}
  return { status: response.statusCode, json }
}

/** registration_shared_secret from a homeserver.yaml, without a YAML parser. */
export function sharedSecretFrom (homeserverYaml: string): string {
  const match = /^registration_shared_secret:\s*["']?([^"'\n]+?)["']?\s*$/m.exec(homeserverYaml)
  if (match === null) throw new Error('homeserver.yaml has no registration_shared_secret')
  return match[1] as string
}

export function registrationMac (sharedSecret: string, nonce: string, username: string, password: string, admin: boolean): string {
  return createHmac('sha1', sharedSecret)
    .update(`${nonce}\x00${username}\x00${password}\x00${admin ? 'admin' : 'notadmin'}`)
    .digest('hex')
}

function writeSecret (file: string, value: string, owner: BootstrapOptions['owner']): void {
  writeFileSync(file, `${value}\n`, { mode: 0o600 })
  chmodSync(file, 0o600) // the mode above applies only when the file is created
  if (owner !== undefined) chownSync(file, owner.uid, owner.gid)
}

/** Returns what it did: kept a working token, registered the account, or logged in again. */
export async function bootstrapAdmin (options: BootstrapOptions): Promise<'kept' | 'registered' | 'logged-in'> {
  const base = options.synapseUrl.replace(/\/+$/, '')
  if (existsSync(options.tokenFile)) {
    const token = readFileSync(options.tokenFile, 'utf8').trim()
    if ((await call(`${base}/_matrix/client/v3/account/whoami`, 'GET', undefined, token)).status === 200) return 'kept'
  }
  const { json: nonceAnswer } = await call(`${base}/_synapse/admin/v1/register`, 'GET')
  const nonce = nonceAnswer.nonce
  if (typeof nonce !== 'string') throw new Error('Synapse did not give a registration nonce: is registration_shared_secret set?')
  const password = existsSync(options.passwordFile) ? readFileSync(options.passwordFile, 'utf8').trim() : randomBytes(24).toString('base64url')
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
    throw new Error(`registration failed: HTTP ${registered.status} ${String(registered.json.errcode ?? '')}`)
  }
  const login = await call(`${base}/_matrix/client/v3/login`, 'POST', {
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: options.username },
    password,
    initial_device_display_name: 'synapse-admin-gateway'
  })
  if (login.status !== 200 || typeof login.json.access_token !== 'string') {
    throw new Error(`the account ${options.username} exists but logging in failed (HTTP ${login.status}); is ${options.passwordFile} its password?`)
  }
  writeSecret(options.tokenFile, login.json.access_token, options.owner)
  return 'logged-in'
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const env = process.env
  const owner = (env.FILE_OWNER ?? '1000:1000').split(':').map(Number)
  const result = await bootstrapAdmin({
    synapseUrl: env.SYNAPSE_URL ?? 'http://synapse:8008',
    sharedSecret: sharedSecretFrom(readFileSync(env.SYNAPSE_CONFIG_FILE ?? '/synapse-data/homeserver.yaml', 'utf8')),
    username: env.ADMIN_USERNAME ?? 'gateway-admin',
    tokenFile: env.TOKEN_FILE ?? '/secrets/synapse_admin_token',
    passwordFile: env.PASSWORD_FILE ?? '/secrets/gateway_admin_password',
    owner: env.FILE_OWNER === '' ? undefined : { uid: owner[0] as number, gid: owner[1] as number }
  })
  process.stdout.write(`gateway admin account: ${result}; token in ${env.TOKEN_FILE ?? '/secrets/synapse_admin_token'}\n`)
}
