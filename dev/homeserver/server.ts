import { createHmac, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { recordedState, type HomeserverState, type SeedOptions, type SimRoom } from './state.js'

/**
 * A small real HTTP server that answers like Synapse 1.67.0 did in the recordings
 * (test/fixtures/synapse/join-contract.json) for the admin join API, the admin user lookup,
 * whoami, the alias directory and server_version; plus faults that can be switched on.
 */
export type Endpoint = 'join' | 'user_lookup' | 'whoami' | 'directory' | 'server_version' | 'other'

export type FaultKind =
  | 'error-500' // Synapse's own 500
  | 'not-json' // a reverse proxy's HTML error page
  | 'slow' // answers normally after `delayMs`
  | 'hang' // never sends headers
  | 'hang-body' // sends headers and part of the body, then stalls
  | 'reset' // closes the connection without answering
  | 'rate-limited' // 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After
  | 'reject-token' // the admin token is no longer valid
  | 'answer' // any status and JSON body, for answers a future Synapse might give
  | 'garbage' // bytes that are not HTTP
  | 'drip' // headers, then one byte of the body every `delayMs`
  | 'huge' // a 200 whose JSON body is 1 MiB

export interface Fault { kind: FaultKind, on?: Endpoint, delayMs?: number, status?: number, body?: unknown }

export interface ReceivedCall { endpoint: Endpoint, method: string, url: string, authorization: string | undefined, body: string }

export interface HomeserverOptions extends Partial<SeedOptions> {
  /** registration_shared_secret, for the shared-secret registration API (not in the recordings: per Synapse's docs). */
  registrationSharedSecret?: string
  /** Newer Synapse versions report `deactivated` as a boolean instead of 0/1. */
  deactivatedAsBoolean?: boolean
  /** Keep every request in `calls` (for tests; off for long benchmark runs). */
  recordCalls?: boolean
}

const JSON_HEADERS = {
  server: 'Synapse/1.67.0',
  'content-type': 'application/json',
  'cache-control': 'no-cache, no-store, must-revalidate',
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'X-Requested-With, Content-Type, Authorization, Date'
}

interface Answer { status: number, body?: unknown, headers?: Record<string, string> }

const matrixError = (status: number, errcode: string, error: string, extra: Record<string, unknown> = {}): Answer =>
  ({ status, body: { errcode, error, ...extra } })
const unrecognized = (status = 400) => matrixError(status, 'M_UNRECOGNIZED', 'Unrecognized request')
const internalError = () => matrixError(500, 'M_UNKNOWN', 'Internal server error')

class AnswerError extends Error {
  constructor (readonly answer: Answer) { super('answer') }
}

function decodeOnce (segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

export class SimulatedHomeserver {
  readonly state: HomeserverState
  readonly adminToken: string
  readonly calls: ReceivedCall[] = []
  fault: Fault | undefined
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private readonly deactivatedAsBoolean: boolean
  private readonly recordCalls: boolean
  readonly registrationSharedSecret: string
  private readonly nonces = new Set<string>()
  private readonly passwords = new Map<string, string>()

  constructor (options: HomeserverOptions = {}) {
    this.adminToken = options.adminToken ?? 'syt_YWRtaW4_simulated_admin_token'
    this.state = recordedState({ adminToken: this.adminToken, userTokens: options.userTokens })
    this.deactivatedAsBoolean = options.deactivatedAsBoolean ?? false
    this.recordCalls = options.recordCalls ?? true
    this.registrationSharedSecret = options.registrationSharedSecret ?? 'simulated-registration-shared-secret'
    this.server = createServer((request, response) => { this.handle(request, response) })
    this.server.on('connection', (socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
  }

  get serverName (): string { return this.state.serverName }

  async listen (port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(port, host, resolve))
    const address = this.server.address() as AddressInfo
    return `http://${host}:${address.port}`
  }

  async close (): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  callsTo (endpoint: Endpoint): ReceivedCall[] {
    return this.calls.filter((call) => call.endpoint === endpoint)
  }

  private handle (request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const url = request.url ?? '/'
      const endpoint = this.endpointOf(url)
      if (this.recordCalls) this.calls.push({ endpoint, method: request.method ?? 'GET', url, authorization: request.headers.authorization, body })
      const fault = this.fault !== undefined && (this.fault.on === undefined || this.fault.on === endpoint) ? this.fault : undefined
      if (fault !== undefined && this.applyFault(fault, request, response, () => this.answer(request, url, body, response))) return
      this.answer(request, url, body, response)
    })
  }

  /** True when the fault fully handled the request. */
  private applyFault (fault: Fault, request: IncomingMessage, response: ServerResponse, answerNormally: () => void): boolean {
    switch (fault.kind) {
      case 'error-500':
        this.send(response, internalError(), request.method)
        return true
      case 'not-json':
        response.writeHead(502, { 'content-type': 'text/html' }).end('<html><body><h1>502 Bad Gateway</h1></body></html>')
        return true
      case 'slow':
        setTimeout(answerNormally, fault.delayMs ?? 1000)
        return true
      case 'hang':
        return true
      case 'hang-body':
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
        response.write('{"room_id": "!')
        return true
      case 'reset':
        request.socket.destroy()
        return true
      case 'rate-limited':
        this.send(response, { ...matrixError(429, 'M_LIMIT_EXCEEDED', 'Too Many Requests', { retry_after_ms: 2970 }), headers: { 'retry-after': '3' } }, request.method)
        return true
      case 'reject-token':
        this.send(response, matrixError(401, 'M_UNKNOWN_TOKEN', 'Invalid access token passed.', { soft_logout: false }), request.method)
        return true
      case 'drip': {
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' })
        const timer = setInterval(() => { response.write(' ') }, fault.delayMs ?? 100)
        response.on('close', () => { clearInterval(timer) })
        return true
      }
      case 'garbage':
        request.socket.end('NOT HTTP AT ALL\r\n\r\n')
        return true
      case 'huge':
        this.send(response, { status: 200, body: { room_id: '!x:test.local', padding: 'x'.repeat(1024 * 1024) } }, request.method)
        return true
      case 'answer':
        this.send(response, { status: fault.status ?? 200, body: fault.body }, request.method)
        return true
    }
  }

  private endpointOf (url: string): Endpoint {
    const path = url.split('?', 1)[0] as string
    if (path.startsWith('/_synapse/admin/v1/join/')) return 'join'
    if (path.startsWith('/_synapse/admin/v2/users/')) return 'user_lookup'
    if (path === '/_matrix/client/v3/account/whoami') return 'whoami'
    if (path.startsWith('/_matrix/client/v3/directory/room/')) return 'directory'
    if (path === '/_synapse/admin/v1/server_version') return 'server_version'
    return 'other'
  }

  private send (response: ServerResponse, answer: Answer, method: string | undefined): void {
    const text = answer.body === undefined || method === 'HEAD' ? '' : JSON.stringify(answer.body)
    response.writeHead(answer.status, { ...JSON_HEADERS, ...answer.headers })
    response.end(text)
  }

  private answer (request: IncomingMessage, url: string, body: string, response: ServerResponse): void {
    const [path = '', query = ''] = url.split('?', 2)
    const params = new URLSearchParams(query)
    const method = request.method ?? 'GET'
    let answer: Answer
    try {
      answer = this.route(method, path, params, request.headers.authorization, body)
    } catch (error) {
      if (!(error instanceof AnswerError)) throw error
      answer = error.answer
    }
    if (answer.status === 204) {
      response.writeHead(204, JSON_HEADERS).end()
      return
    }
    this.send(response, answer, method)
  }

  private route (method: string, path: string, params: URLSearchParams, authorization: string | undefined, body: string): Answer {
    if (path === '/health' && method === 'GET') return { status: 200, body: 'OK' }
    if (path === '/_synapse/admin/v1/server_version') return { status: 200, body: { server_version: '1.67.0', python_version: '3.11.2' } }
    if (path === '/_matrix/client/v3/account/whoami' && method === 'GET') {
      const userId = this.requester(authorization, params)
      return { status: 200, body: { user_id: userId, is_guest: false, device_id: 'SIMULATED' } }
    }
    if (path === '/_synapse/admin/v1/register') return method === 'GET' ? this.nonce() : this.register(body)
    if (path === '/_matrix/client/v3/login' && method === 'POST') return this.login(body)
    const directory = /^\/_matrix\/client\/v3\/directory\/room\/([^/]*)$/.exec(path)
    if (directory !== null && method === 'GET') return this.directory(decodeOnce(directory[1] as string))
    const user = /^\/_synapse\/admin\/v2\/users\/([^/]*)$/.exec(path)
    if (user !== null && method === 'GET') {
      this.requireAdmin(authorization, params)
      return this.lookupUser(decodeOnce(user[1] as string))
    }
    const join = /^\/_synapse\/admin\/v1\/join\/([^/]*)$/.exec(path)
    if (join !== null) {
      if (method === 'OPTIONS') return { status: 204 }
      if (method !== 'POST') return method === 'HEAD' ? { status: 400 } : unrecognized()
      const requester = this.requireAdmin(authorization, params)
      return this.join(requester, decodeOnce(join[1] as string), params, body)
    }
    return path.startsWith('/_synapse/admin/') ? unrecognized() : unrecognized(404)
  }

  /** Synapse's access-token rules, in its order: header form, mixing, missing, unknown. */
  private requester (authorization: string | undefined, params: URLSearchParams): string {
    const queryToken = params.get('access_token')
    if (authorization !== undefined && queryToken !== null) {
      throw new AnswerError(matrixError(401, 'M_MISSING_TOKEN', 'Mixing Authorization headers and access_token query parameters.'))
    }
    let token = queryToken
    if (authorization !== undefined) {
      const match = /^Bearer (\S+)$/.exec(authorization)
      if (match === null) throw new AnswerError(matrixError(401, 'M_MISSING_TOKEN', 'Invalid Authorization header.'))
      token = match[1] as string
    }
    if (token === null) throw new AnswerError(matrixError(401, 'M_MISSING_TOKEN', 'Missing access token'))
    const userId = this.state.tokens.get(token)
    if (userId === undefined || this.state.users.get(userId)?.deactivated === true) {
      throw new AnswerError(matrixError(401, 'M_UNKNOWN_TOKEN', 'Invalid access token passed.', { soft_logout: false }))
    }
    return userId
  }

  private requireAdmin (authorization: string | undefined, params: URLSearchParams): string {
    const userId = this.requester(authorization, params)
    if (this.state.users.get(userId)?.admin !== true) throw new AnswerError(matrixError(403, 'M_FORBIDDEN', 'You are not a server admin'))
    return userId
  }

  private lookupUser (userId: string): Answer {
    if (!userId.startsWith('@') || !userId.includes(':')) return matrixError(400, 'M_INVALID_PARAM', 'Expected UserID of the form \'@localname:domain\'')
    if (userId.slice(userId.indexOf(':') + 1) !== this.serverName) return matrixError(400, 'M_UNKNOWN', 'Can only look up local users')
    const user = this.state.users.get(userId)
    if (user === undefined) return matrixError(404, 'M_NOT_FOUND', 'User not found')
    const flag = (value: boolean) => this.deactivatedAsBoolean ? value : Number(value)
    return {
      status: 200,
      body: {
        name: userId,
        is_guest: 0,
        admin: Number(user.admin),
        consent_version: null,
        consent_server_notice_sent: null,
        appservice_id: null,
        creation_ts: user.creationTs,
        user_type: null,
        deactivated: flag(user.deactivated),
        shadow_banned: flag(user.shadowBanned),
        displayname: userId.slice(1, userId.indexOf(':')),
        avatar_url: null,
        threepids: [],
        external_ids: []
      }
    }
  }

  private nonce (): Answer {
    const nonce = randomBytes(16).toString('hex')
    this.nonces.add(nonce)
    return { status: 200, body: { nonce } }
  }

  /** Shared-secret registration, as Synapse's admin API documentation describes it. */
  private register (body: string): Answer {
    const content = this.parseBody(body) as { nonce?: string, username?: string, password?: string, admin?: boolean, mac?: string }
    if (typeof content.nonce !== 'string' || !this.nonces.delete(content.nonce)) return matrixError(400, 'M_UNKNOWN', 'unrecognised nonce')
    const expected = createHmac('sha1', this.registrationSharedSecret)
      .update(`${content.nonce}\x00${String(content.username)}\x00${String(content.password)}\x00${content.admin === true ? 'admin' : 'notadmin'}`)
      .digest('hex')
    if (content.mac !== expected) return matrixError(403, 'M_FORBIDDEN', 'HMAC incorrect')
    const userId = `@${String(content.username)}:${this.serverName}`
    if (this.state.users.has(userId)) return matrixError(400, 'M_USER_IN_USE', 'User ID already taken.')
    this.state.users.set(userId, { admin: content.admin === true, deactivated: false, shadowBanned: false, creationTs: Date.now() })
    this.passwords.set(userId, String(content.password))
    return { status: 200, body: { access_token: this.issueToken(userId), user_id: userId, home_server: this.serverName, device_id: 'SIMULATED' } }
  }

  private login (body: string): Answer {
    const content = this.parseBody(body) as { identifier?: { user?: string }, password?: string }
    const userId = `@${String(content.identifier?.user)}:${this.serverName}`
    if (this.passwords.get(userId) === undefined || this.passwords.get(userId) !== content.password) {
      return matrixError(403, 'M_FORBIDDEN', 'Invalid username or password')
    }
    return { status: 200, body: { access_token: this.issueToken(userId), user_id: userId, home_server: this.serverName, device_id: 'SIMULATED' } }
  }

  private issueToken (userId: string): string {
    const token = `syt_${randomBytes(18).toString('base64url')}`
    this.state.tokens.set(token, userId)
    return token
  }

  private directory (alias: string): Answer {
    if (!alias.startsWith('#') || !alias.includes(':')) return matrixError(400, 'M_INVALID_PARAM', 'Room alias invalid')
    if (alias.slice(alias.indexOf(':') + 1) !== this.serverName) return matrixError(502, 'M_UNKNOWN', 'Failed to fetch alias')
    const room = this.roomByAlias(alias)
    if (room === undefined) return matrixError(404, 'M_NOT_FOUND', `Room alias ${alias} not found`)
    return { status: 200, body: { room_id: room.id, servers: [this.serverName] } }
  }

  private roomByAlias (alias: string): SimRoom | undefined {
    for (const room of this.state.rooms.values()) if (room.aliases.includes(alias)) return room
    return undefined
  }

  private parseBody (body: string): Record<string, unknown> {
    let json: unknown
    try {
      json = JSON.parse(body)
    } catch {
      throw new AnswerError(matrixError(400, 'M_NOT_JSON', 'Content not JSON.'))
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new AnswerError(matrixError(400, 'M_BAD_JSON', 'Content must be a JSON object.'))
    }
    return json as Record<string, unknown>
  }

  /** UserID.from_string and the admin join servlet's checks, in Synapse's order. */
  private targetUser (content: Record<string, unknown>): string {
    if (!Object.hasOwn(content, 'user_id')) throw new AnswerError(matrixError(400, 'M_MISSING_PARAM', 'Missing params: [\'user_id\']'))
    const value = content.user_id
    if (Array.isArray(value)) {
      if (value[0] !== '@') throw new AnswerError(matrixError(400, 'M_INVALID_PARAM', 'Expected UserID string to start with \'@\''))
      throw new AnswerError(internalError())
    }
    if (typeof value !== 'string') throw new AnswerError(internalError())
    if (!value.startsWith('@')) throw new AnswerError(matrixError(400, 'M_INVALID_PARAM', 'Expected UserID string to start with \'@\''))
    if (!value.includes(':')) throw new AnswerError(matrixError(400, 'M_INVALID_PARAM', 'Expected UserID of the form \'@localname:domain\''))
    if (value.slice(value.indexOf(':') + 1) !== this.serverName) {
      throw new AnswerError(matrixError(400, 'M_UNKNOWN', 'This endpoint can only be used with local users'))
    }
    if (!this.state.users.has(value)) throw new AnswerError(matrixError(404, 'M_NOT_FOUND', 'User not found'))
    return value
  }

  private targetRoom (identifier: string, params: URLSearchParams): SimRoom {
    const isRoomId = identifier.startsWith('!') && identifier.includes(':')
    const isAlias = identifier.startsWith('#') && identifier.includes(':')
    if (!isRoomId && !isAlias) throw new AnswerError(matrixError(400, 'M_UNKNOWN', `${identifier} was not legal room ID or room alias`))
    if (isAlias) {
      const answer = this.directory(identifier)
      if (answer.status !== 200) throw new AnswerError(answer)
      return this.roomByAlias(identifier) as SimRoom
    }
    const room = this.state.rooms.get(identifier)
    if (room === undefined) {
      if (params.has('server_name')) throw new AnswerError(matrixError(502, 'M_UNKNOWN', 'Failed to make_join via any server'))
      throw new AnswerError(matrixError(404, 'M_UNKNOWN', 'Can\'t join remote room because no servers that are in the room have been provided.'))
    }
    return room
  }

  private join (requester: string, identifier: string, params: URLSearchParams, body: string): Answer {
    const userId = this.targetUser(this.parseBody(body))
    const room = this.targetRoom(identifier, params)
    if (room.blocked) return matrixError(403, 'M_UNKNOWN', 'This room has been blocked on this server')
    const membership = room.members.get(userId)
    if (!room.public) {
      // Non-public rooms: Synapse has the admin invite the user first, under the room's rules.
      if (membership === 'ban') return matrixError(403, 'M_BAD_STATE', 'Cannot invite user who was banned')
      if (room.members.get(requester) !== 'join') return matrixError(403, 'M_FORBIDDEN', `${requester} not in room ${room.id}.`)
      if (membership === 'join') return matrixError(403, 'M_FORBIDDEN', `${userId} is already in the room.`)
      if ((room.powerLevels.get(requester) ?? 0) < room.invitePowerLevel) {
        return matrixError(403, 'M_FORBIDDEN', 'You don\'t have permission to invite users')
      }
    } else if (membership === 'ban') {
      return matrixError(403, 'M_BAD_STATE', 'Cannot join user who was banned')
    }
    room.members.set(userId, 'join')
    return { status: 200, body: { room_id: room.id } }
  }
}

export async function startHomeserver (options: HomeserverOptions = {}, port = 0): Promise<{ homeserver: SimulatedHomeserver, url: string }> {
  const homeserver = new SimulatedHomeserver(options)
  const url = await homeserver.listen(port)
  return { homeserver, url }
}
