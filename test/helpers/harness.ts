import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { request } from 'undici'
import { buildApp, type App, type BuildOptions } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import type { JwksTiming } from '../../src/auth/jwks.js'
import { SimulatedHomeserver, type HomeserverOptions } from '../../dev/homeserver/server.js'
import { helpdeskClaims, signJwt, type JwtClaims } from '../../dev/tokens.js'

/** Canaries: if either ever shows up in a log line or a response, a secret has leaked. */
export const ADMIN_TOKEN = 'syt_CANARY_admin_token_must_never_leak_4f2a9'
export const JWT_SECRET = 'CANARY-jwt-secret-must-never-leak-0123456789abcdef'

interface Tap {
  after: (fn: () => unknown) => void
}

export interface Harness {
  app: App
  /** The gateway's base URL (it listens on a loopback port). */
  url: string
  homeserver: SimulatedHomeserver
  homeserverUrl: string
  /** The audit `result` records written so far (one per attempt), parsed. */
  audit: () => Array<Record<string, any>>
  /** Every audit record (start, intent, result, stop), parsed. */
  auditRecords: () => Array<Record<string, any>>
  /** The raw text of the audit file. */
  auditText: () => string
  /** Everything the service logged, raw. */
  logs: () => string
  auditFile: string
  /** Environment for a real server process (test/helpers/process.ts) against this homeserver. */
  serverEnv: (extra?: Record<string, string>) => Record<string, string>
  /** A valid HS256 token with the join role, with any claim overridden. */
  token: (claims?: JwtClaims) => string
  join: (room: string, body: unknown, options?: { token?: string | null, headers?: Record<string, string>, rawBody?: string }) => Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: any, text: string }>
}

export interface HarnessOptions {
  env?: Record<string, string | undefined>
  homeserver?: HomeserverOptions
  /** Start the gateway against this URL instead of the simulated homeserver's. */
  synapseUrl?: string
  jwksTiming?: JwksTiming
  synapseBreaker?: BuildOptions['synapseBreaker']
  clientTimeouts?: BuildOptions['clientTimeouts']
  /** The approvals' clock and expiry sweep (src/app.ts BuildOptions). */
  approvals?: BuildOptions['approvals']
  /** How long room facts and resolved aliases are reused (src/app.ts BuildOptions). */
  roomFacts?: BuildOptions['roomFacts']
  /** The clock idempotency records kept in memory expire by (src/app.ts BuildOptions). */
  idempotencyClock?: BuildOptions['idempotencyClock']
}

export class LogCapture extends Writable {
  text = ''
  override _write (chunk: Buffer, _encoding: string, callback: () => void): void {
    this.text += chunk.toString()
    callback()
  }
}

export async function startHarness (t: Tap, options: HarnessOptions = {}): Promise<Harness> {
  const homeserver = new SimulatedHomeserver({ adminToken: ADMIN_TOKEN, ...options.homeserver })
  const homeserverUrl = await homeserver.listen()
  const dir = mkdtempSync(join(tmpdir(), 'gateway-test-'))
  t.after(async () => {
    await homeserver.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const auditFile = join(dir, 'audit.log')
  const env = {
    SYNAPSE_URL: options.synapseUrl ?? homeserverUrl,
    SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN,
    SYNAPSE_SERVER_NAME: 'test.local',
    JWT_SECRET,
    AUDIT_LOG_FILE: auditFile,
    SYNAPSE_TIMEOUT_MS: '2000',
    ...options.env
  }
  const logs = new LogCapture()
  const app = await buildApp(loadConfig(env), { logDestination: logs, jwksTiming: options.jwksTiming, synapseBreaker: options.synapseBreaker, clientTimeouts: options.clientTimeouts, approvals: options.approvals, roomFacts: options.roomFacts, idempotencyClock: options.idempotencyClock })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.after(async () => {
    await app.close()
    // Every test that uses the harness checks, on its way out, that no canary secret leaked.
    for (const [where, text] of [['service log', logs.text], ['audit log', auditText()]] as const) {
      if (text.includes(ADMIN_TOKEN) || text.includes(JWT_SECRET)) throw new Error(`a canary secret leaked into the ${where}`)
    }
  })
  const token = (claims: JwtClaims = {}) => signJwt({ alg: 'HS256' }, helpdeskClaims(claims), JWT_SECRET)
  const auditText = () => { try { return readFileSync(auditFile, 'utf8') } catch { return '' } }
  const auditRecords = () => auditText().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, any>)
  return {
    app,
    url,
    homeserver,
    homeserverUrl,
    auditFile,
    serverEnv: (extra = {}) => ({
      PORT: '0',
      SYNAPSE_URL: homeserverUrl,
      SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN,
      SYNAPSE_SERVER_NAME: 'test.local',
      JWT_SECRET,
      ...extra
    }),
    audit: () => auditRecords().filter((record) => record.event === 'result'),
    auditRecords,
    auditText,
    logs: () => logs.text,
    token,
    async join (room, body, joinOptions = {}) {
      const headers: Record<string, string> = { 'content-type': 'application/json', ...joinOptions.headers }
      const bearer = joinOptions.token === undefined ? token() : joinOptions.token
      if (bearer !== null) headers.authorization = `Bearer ${bearer}`
      const response = await request(`${url}/v1/rooms/${room}/members`, {
        method: 'POST',
        headers,
        body: joinOptions.rawBody ?? JSON.stringify(body)
      })
      const text = await response.body.text()
      let parsed: unknown
      try { parsed = JSON.parse(text) } catch { parsed = undefined }
      return { status: response.statusCode, headers: response.headers, body: parsed, text }
    }
  }
}
