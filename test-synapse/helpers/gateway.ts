/**
 * The gateway in-process (`buildApp(loadConfig(env))`, as src/server.ts builds it) on a loopback
 * port, pointed at the real Synapse with the run's admin account, and driven over HTTP with real
 * signed JWTs.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { request } from 'undici'
import { stringify } from 'yaml'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { helpdeskClaims, signJwt, type JwtClaims } from '../../dev/tokens.js'
import type { Matrix, MatrixUser } from './matrix.js'

interface Tap {
  after: (fn: () => unknown) => void
}

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: any
}

export interface PolicyRule {
  name: string
  effect?: 'allow' | 'deny'
  roles?: string[]
  orgs?: string[]
  actions: string[]
  rooms?: string[]
  users?: string[]
  when?: string
}

export interface Gateway {
  url: string
  /** A valid HS256 token (sub helpdesk-bot, role matrix-admin), any claim overridden. */
  token: (claims?: JwtClaims) => string
  call: (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options?: { body?: unknown, token?: string, headers?: Record<string, string> }) => Promise<Answer>
  /** Audit records written so far, parsed. */
  audit: () => Array<Record<string, any>>
}

/** Every action, for callers with `matrix-admin`: the tier tests the actions, not the policy. */
export const ALLOW_ALL: PolicyRule[] = [{ name: 'tier-matrix-admin-all', roles: ['matrix-admin'], actions: ['*'] }]

class Capture extends Writable {
  text = ''
  override _write (chunk: Buffer, _encoding: string, callback: () => void): void {
    this.text += chunk.toString()
    callback()
  }
}

export async function startGateway (t: Tap, matrix: Matrix, admin: MatrixUser, options: { policy?: PolicyRule[], env?: Record<string, string> } = {}): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-synapse-it-'))
  const jwtSecret = randomBytes(32).toString('base64url')
  const auditFile = join(dir, 'audit.log')
  const env: Record<string, string> = {
    SYNAPSE_URL: matrix.target.url,
    SYNAPSE_ADMIN_TOKEN: admin.token,
    SYNAPSE_SERVER_NAME: matrix.serverName,
    JWT_SECRET: jwtSecret,
    AUDIT_LOG_FILE: auditFile,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '100000',
    ...options.env
  }
  if (options.policy !== undefined) {
    env.POLICY_FILE = join(dir, 'policy.yaml')
    writeFileSync(env.POLICY_FILE, stringify({ rules: options.policy }))
  }
  const logs = new Capture()
  const app = await buildApp(loadConfig(env), { logDestination: logs })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const auditText = () => { try { return readFileSync(auditFile, 'utf8') } catch { return '' } }
  t.after(async () => {
    await app.close()
    const leaked = [['service log', logs.text], ['audit log', auditText()]].find(([, text]) => text?.includes(admin.token) === true || text?.includes(jwtSecret) === true)
    rmSync(dir, { recursive: true, force: true })
    if (leaked !== undefined) throw new Error(`the admin token or JWT secret leaked into the ${String(leaked[0])}`)
  })
  const token = (claims: JwtClaims = {}) => signJwt({ alg: 'HS256' }, helpdeskClaims(claims), jwtSecret)
  return {
    url,
    token,
    async call (method, path, callOptions = {}) {
      const response = await request(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${callOptions.token ?? token()}`,
          ...(callOptions.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...callOptions.headers
        },
        body: callOptions.body === undefined ? undefined : JSON.stringify(callOptions.body),
        headersTimeout: 30_000,
        bodyTimeout: 30_000
      })
      const text = await response.body.text()
      let body: any
      try { body = JSON.parse(text) } catch { body = text }
      return { status: response.statusCode, headers: response.headers, body }
    },
    audit: () => auditText().split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as Record<string, any>)
  }
}

/** The path segment of a room or user, percent-encoded as the contract shows (`%23alias:server`). */
export const segment = (id: string) => encodeURIComponent(id)
