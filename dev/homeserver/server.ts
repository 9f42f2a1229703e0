import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { AnswerError, domainOf, fail, internalError, lenientJsonObject, matrixError, parseJsonObject, parseUserId, unrecognized, type Answer } from './answers.js'
import { Accounts, type NewAccount, type Session } from './accounts.js'
import { NEWEST_SYNAPSE, SYNAPSE_PROFILES, type SynapseProfile, type SynapseVersion } from './versions.js'
import { adminJoin, clientJoin, directory, kick, leave, makeRoomAdmin, resolveRoom } from './rooms.js'
import { recordedState, type HomeserverState, type SeedOptions, type SimRoom } from './state.js'
import { joinedMembers, roomDetails, roomSummary, stateEvents } from './views.js'

/**
 * A small real HTTP server that answers like Synapse did in the recordings (1.163.2 by default, or 1.67.0: versions.ts)
 * (test/fixtures/synapse/join-contract.json and actions-contract.json): the admin join API,
 * kick, login-as, leave and logout, the admin user, device, whois, room and room-list reads,
 * make_room_admin, whoami, the alias directory and server_version; the account endpoints
 * (accounts.ts, from modern-1.163.2.json and v1.67-account-actions.json: lock, suspend, devices,
 * password reset, deactivation, password login, sending and reading messages); plus faults that
 * can be switched on, for every endpoint or one. Shared-secret registration follows Synapse's documentation.
 */
export type Endpoint =
  | 'join' | 'user_lookup' | 'whoami' | 'directory' | 'server_version'
  | 'kick' | 'login_as' | 'leave' | 'logout' | 'devices' | 'joined_rooms' | 'whois'
  | 'room_details' | 'room_members' | 'room_state' | 'room_list' | 'make_room_admin' | 'block_status'
  | 'register' | 'login' | 'other' | 'client_join'
  | 'user_update' | 'suspend' | 'delete_devices' | 'reset_password' | 'deactivate' | 'send' | 'messages'

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
  /** The Synapse version to answer as (dev/homeserver/versions.ts); default the newest recorded. */
  synapseVersion?: SynapseVersion
  /** `deactivated` and `shadow_banned` as booleans (true) or 0/1 (false) whatever the version; default: as the version answers. */
  deactivatedAsBoolean?: boolean
  /** Keep every request in `calls` (for tests; off for long benchmark runs). */
  recordCalls?: boolean
}

const JSON_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-cache, no-store, must-revalidate',
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'X-Requested-With, Content-Type, Authorization, Date'
}

interface Incoming { method: string, path: string, params: URLSearchParams, authorization: string | undefined, body: string }

/** `segment` is the route's path parameter, percent-decoded once as Synapse does. */
type Handler = (incoming: Incoming, segment: string) => Answer

type Method = 'GET' | 'POST' | 'PUT'

interface Route {
  endpoint: Endpoint
  /** Where one path serves two endpoints (GET lookup, PUT update), for `calls` and faults. */
  endpointByMethod?: Partial<Record<Method, Endpoint>>
  pattern: RegExp
  handlers: Partial<Record<Method, Handler>>
}

/** A client-server API path under the current (v3) or the legacy (r0) prefix (k25). */
const CLIENT = (rest: RegExp) => new RegExp(`^/_matrix/client/(?:v3|r0)/${rest.source}$`)

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
  /** What differs between the Synapse versions the simulator can answer as. */
  readonly profile: SynapseProfile
  private readonly recordCalls: boolean
  readonly registrationSharedSecret: string
  private readonly nonces = new Set<string>()
  /** Users, passwords, sessions and the account endpoints (accounts.ts). */
  readonly accounts: Accounts

  constructor (options: HomeserverOptions = {}) {
    this.adminToken = options.adminToken ?? 'syt_YWRtaW4_simulated_admin_token'
    this.state = recordedState({ adminToken: this.adminToken, userTokens: options.userTokens, fixture: options.fixture })
    this.profile = SYNAPSE_PROFILES[options.synapseVersion ?? NEWEST_SYNAPSE]
    this.accounts = new Accounts(this.state, this.profile, options.deactivatedAsBoolean ?? this.profile.flagsAsBooleans)
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
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const address = this.server.address() as AddressInfo
    this.accounts.baseUrl = `http://${host}:${address.port}/`
    return `http://${host}:${address.port}`
  }

  async close (): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  /** A new local user with a password, logged in on one device (see accounts.ts). */
  createUser (account: NewAccount): Session {
    return this.accounts.create(account)
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
      const endpoint = this.endpointOf(url, request.method)
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

  private send (response: ServerResponse, answer: Answer, method: string | undefined): void {
    const text = answer.body === undefined || method === 'HEAD' ? '' : JSON.stringify(answer.body)
    response.writeHead(answer.status, { ...JSON_HEADERS, server: `Synapse/${this.profile.version}`, ...answer.headers })
    response.end(text)
  }

  private answer (request: IncomingMessage, url: string, body: string, response: ServerResponse): void {
    const [path = '', query = ''] = url.split('?', 2)
    const params = new URLSearchParams(query)
    const method = request.method ?? 'GET'
    let answer: Answer
    try {
      answer = this.route({ method, path, params, authorization: request.headers.authorization, body })
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

  /** Every endpoint the simulated homeserver answers; a known path with another method is 400 M_UNRECOGNIZED (k24, l20). */
  private readonly routes: Route[] = [
    { endpoint: 'other', pattern: /^\/health$/, handlers: { GET: () => ({ status: 200, body: 'OK' }) } },
    { endpoint: 'server_version', pattern: /^\/_synapse\/admin\/v1\/server_version$/, handlers: { GET: () => this.serverVersion(), POST: () => this.serverVersion() } },
    { endpoint: 'whoami', pattern: CLIENT(/account\/whoami/), handlers: { GET: (req) => this.whoami(req) } },
    { endpoint: 'register', pattern: /^\/_synapse\/admin\/v1\/register$/, handlers: { GET: () => this.nonce(), POST: (req) => this.accounts.register(req.body, this.registrationSharedSecret, this.nonces) } },
    { endpoint: 'login', pattern: CLIENT(/login/), handlers: { POST: (req) => this.accounts.login(req.body) } },
    { endpoint: 'logout', pattern: CLIENT(/logout/), handlers: { POST: (req) => this.logout(req) } },
    { endpoint: 'directory', pattern: CLIENT(/directory\/room\/([^/]*)/), handlers: { GET: (_req, alias) => directory(this.state, alias) } },
    { endpoint: 'kick', pattern: CLIENT(/rooms\/([^/]*)\/kick/), handlers: { POST: (req, roomId) => this.kick(req, roomId) } },
    { endpoint: 'client_join', pattern: CLIENT(/rooms\/([^/]*)\/join/), handlers: { POST: (req, roomId) => clientJoin(this.state, this.requester(req).userId, roomId) } },
    { endpoint: 'leave', pattern: CLIENT(/rooms\/([^/]*)\/leave/), handlers: { POST: (req, roomId) => leave(this.state, this.requester(req).userId, roomId, lenientJsonObject(req.body)) } },
    { endpoint: 'devices', pattern: /^\/_synapse\/admin\/v2\/users\/([^/]*)\/devices$/, handlers: { GET: (req, userId) => this.admin(req, () => this.accounts.devices(userId)) } },
    ...this.accountRoutes(),
    { endpoint: 'login_as', pattern: /^\/_synapse\/admin\/v1\/users\/([^/]*)\/login$/, handlers: { POST: (req, userId) => this.loginAs(req, userId) } },
    { endpoint: 'joined_rooms', pattern: /^\/_synapse\/admin\/v1\/users\/([^/]*)\/joined_rooms$/, handlers: { GET: (req, userId) => this.admin(req, () => this.joinedRooms(userId)) } },
    { endpoint: 'whois', pattern: /^\/_synapse\/admin\/v1\/whois\/([^/]*)$/, handlers: { GET: (req, userId) => this.whois(req, userId) } },
    { endpoint: 'join', pattern: /^\/_synapse\/admin\/v1\/join\/([^/]*)$/, handlers: { POST: (req, room) => this.admin(req, (requester) => this.join(requester, room, req)) } },
    { endpoint: 'room_list', pattern: /^\/_synapse\/admin\/v1\/rooms$/, handlers: { GET: (req) => this.admin(req, () => this.roomList(req.params)) } },
    { endpoint: 'room_details', pattern: /^\/_synapse\/admin\/v1\/rooms\/([^/]*)$/, handlers: { GET: (req, roomId) => this.admin(req, () => ({ status: 200, body: this.roomDetails(roomId) })) } },
    {
      endpoint: 'room_members',
      pattern: /^\/_synapse\/admin\/v1\/rooms\/([^/]*)\/members$/,
      handlers: {
        GET: (req, roomId) => this.admin(req, () => {
          const members = joinedMembers(this.knownRoom(roomId))
          return { status: 200, body: { members, total: members.length } }
        })
      }
    },
    // Not recorded: as Synapse's admin API documentation says (Block Room API, "Get block status", since 1.48),
    // any room ID, known or not, answers with its block status.
    {
      endpoint: 'block_status',
      pattern: /^\/_synapse\/admin\/v1\/rooms\/([^/]*)\/block$/,
      // Who blocked a room is not kept: the fixture's blocked rooms were blocked by the admin.
      handlers: { GET: (req, roomId) => this.admin(req, (requester) => ({ status: 200, body: this.state.rooms.get(roomId)?.blocked === true ? { block: true, user_id: requester } : { block: false } })) }
    },
    { endpoint: 'room_state', pattern: /^\/_synapse\/admin\/v1\/rooms\/([^/]*)\/state$/, handlers: { GET: (req, roomId) => this.admin(req, () => this.roomState(roomId, req.params)) } },
    {
      endpoint: 'make_room_admin',
      pattern: /^\/_synapse\/admin\/v1\/rooms\/([^/]*)\/make_room_admin$/,
      handlers: { POST: (req, room) => this.admin(req, (requester) => makeRoomAdmin(this.state, requester, room, parseJsonObject(req.body, true))) }
    }
  ]

  /** The account endpoints (accounts.ts, recordings l*, s*, d*, p*, x*). */
  private accountRoutes (): Route[] {
    // Handlers read this.accounts when called: the route table is built before the constructor sets it.
    return [
      {
        endpoint: 'user_lookup',
        endpointByMethod: { PUT: 'user_update' },
        pattern: /^\/_synapse\/admin\/v2\/users\/([^/]*)$/,
        handlers: {
          GET: (req, userId) => this.admin(req, () => this.accounts.lookup(userId)),
          PUT: (req, userId) => this.admin(req, () => this.accounts.putUser(userId, req.body))
        }
      },
      {
        endpoint: 'suspend',
        pattern: /^\/_synapse\/admin\/v1\/suspend\/([^/]*)$/,
        // 1.67 has no such endpoint: 400 M_UNRECOGNIZED, before the token is looked at (s1, s11).
        handlers: { PUT: (req, userId) => this.profile.suspendEndpoint ? this.admin(req, () => this.accounts.suspend(userId, req.body)) : unrecognized() }
      },
      { endpoint: 'delete_devices', pattern: /^\/_synapse\/admin\/v2\/users\/([^/]*)\/delete_devices$/, handlers: { POST: (req, userId) => this.admin(req, () => this.accounts.deleteDevices(userId, req.body)) } },
      { endpoint: 'reset_password', pattern: /^\/_synapse\/admin\/v1\/reset_password\/([^/]*)$/, handlers: { POST: (req, userId) => this.admin(req, () => this.accounts.resetPassword(userId, req.body)) } },
      { endpoint: 'deactivate', pattern: /^\/_synapse\/admin\/v1\/deactivate\/([^/]*)$/, handlers: { POST: (req, userId) => this.admin(req, () => this.accounts.deactivate(userId, req.body)) } },
      { endpoint: 'send', pattern: CLIENT(/rooms\/([^/]*)\/send\/m\.room\.message\/[^/]*/), handlers: { PUT: (req, roomId) => this.accounts.send(this.requester(req).userId, roomId, req.body) } },
      { endpoint: 'messages', pattern: CLIENT(/rooms\/([^/]*)\/messages/), handlers: { GET: (req, roomId) => this.accounts.readMessages(this.requester(req).userId, roomId, req.params) } }
    ]
  }

  private match (path: string): { route: Route, segment: string } | undefined {
    for (const route of this.routes) {
      const found = route.pattern.exec(path)
      if (found !== null) return { route, segment: decodeOnce(found[1] ?? '') }
    }
    return undefined
  }

  private endpointOf (url: string, method: string | undefined): Endpoint {
    const route = this.match(url.split('?', 1)[0] as string)?.route
    return route?.endpointByMethod?.[method as Method] ?? route?.endpoint ?? 'other'
  }

  private route (req: Incoming): Answer {
    const found = this.match(req.path)
    if (found === undefined) return req.path.startsWith('/_synapse/admin/') ? unrecognized() : unrecognized(404)
    if (req.method === 'OPTIONS') return { status: 204 }
    const handler = found.route.handlers[req.method === 'HEAD' ? 'GET' : req.method as Method]
    return handler === undefined ? unrecognized() : handler(req, found.segment)
  }

  /**
   * Synapse's access-token rules, in its order: header form, mixing, missing, unknown, expired,
   * then the lock (l3; `allowLocked` for logout, which a locked user may call: probed on 1.163.2).
   */
  private requester ({ authorization, params }: Incoming, allowLocked = false): { userId: string, token: string } {
    const queryToken = params.get('access_token')
    if (authorization !== undefined && queryToken !== null) {
      fail(401, 'M_MISSING_TOKEN', 'Mixing Authorization headers and access_token query parameters.')
    }
    let token = queryToken
    if (authorization !== undefined) {
      const match = /^Bearer (\S+)$/.exec(authorization)
      if (match === null) fail(401, 'M_MISSING_TOKEN', 'Invalid Authorization header.')
      token = (match as RegExpExecArray)[1] as string
    }
    if (token === null) return fail(401, 'M_MISSING_TOKEN', 'Missing access token')
    const userId = this.state.tokens.get(token)
    const puppet = this.state.puppetTokens.get(token)
    // A login-as token works for a deactivated user (l13b); the user's own tokens do not.
    if (userId === undefined || (puppet === undefined && this.state.users.get(userId)?.deactivated === true)) {
      throw new AnswerError(matrixError(401, 'M_UNKNOWN_TOKEN', 'Invalid access token passed.', { soft_logout: false }))
    }
    if (puppet?.validUntilMs != null && puppet.validUntilMs <= Date.now()) {
      throw new AnswerError(matrixError(401, 'M_UNKNOWN_TOKEN', 'Access token has expired', { soft_logout: true }))
    }
    if (!allowLocked) this.accounts.checkNotLocked(userId)
    const user = this.state.users.get(userId)
    if (puppet === undefined && user !== undefined) user.lastSeenTs = Date.now()
    return { userId, token }
  }

  /** Runs `answer` for a server admin: the token is checked before anything else (x6, x6b). */
  private admin (req: Incoming, answer: (requester: string) => Answer): Answer {
    const { userId } = this.requester(req)
    if (this.state.users.get(userId)?.admin !== true) fail(403, 'M_FORBIDDEN', 'You are not a server admin')
    return answer(userId)
  }

  private kick (req: Incoming, roomId: string): Answer {
    const requester = this.requester(req).userId
    if (this.profile.kickUnknownRoomIsNotFound && !this.state.rooms.has(roomId)) return matrixError(404, 'M_UNKNOWN', 'Not a known room')
    return kick(this.state, requester, roomId, lenientJsonObject(req.body))
  }

  private roomDetails (roomId: string): Record<string, unknown> {
    const details = roomDetails(this.knownRoom(roomId), this.state)
    return this.profile.roomTombstoneFields ? { ...details, tombstoned: false, replacement_room: null } : details
  }

  /** 1.67 ignores `?type=` and answers every state event (g22). */
  private roomState (roomId: string, params: URLSearchParams): Answer {
    const events = stateEvents(this.knownRoom(roomId), this.serverName)
    const type = params.get('type')
    const state = this.profile.stateTypeFilter && type !== null && type !== '' ? events.filter((event) => event.type === type) : events
    return { status: 200, body: { state } }
  }

  private serverVersion (): Answer {
    return { status: 200, body: { ...this.profile.serverVersion } }
  }

  /** A login-as token has no device (l4); the user's own token shows its device (l10c). */
  private whoami (req: Incoming): Answer {
    const { userId, token } = this.requester(req)
    if (this.state.puppetTokens.has(token)) return { status: 200, body: { user_id: userId, is_guest: false } }
    return { status: 200, body: { user_id: userId, is_guest: false, device_id: this.accounts.deviceOf(token, userId) ?? 'SIMULATED' } }
  }

  /** Removes only this token: the user's devices stay (l8, l9), their own tokens keep working (l10c). */
  private logout (req: Incoming): Answer {
    const { token } = this.requester(req, true)
    this.state.tokens.delete(token)
    this.state.puppetTokens.delete(token)
    this.accounts.forgetToken(token)
    return { status: 200, body: {} }
  }

  /**
   * POST /_synapse/admin/v1/users/{id}/login (l*, x2*, x5): a puppet token for any local user ID.
   * For a user that does not exist the token is dead from the start (l14–l14d), so it is not kept.
   */
  private loginAs (req: Incoming, userId: string): Answer {
    return this.admin(req, (requester) => {
      // is_mine_id on an ID without ':' is a Python IndexError (l17).
      if (!userId.includes(':')) throw new AnswerError(internalError())
      if (domainOf(userId) !== this.serverName) fail(400, 'M_UNKNOWN', 'Only local users can be logged in as')
      const validUntilMs = parseJsonObject(req.body, true).valid_until_ms ?? null
      if (validUntilMs !== null && !Number.isInteger(validUntilMs)) fail(400, 'M_UNKNOWN', '\'valid_until_ms\' parameter must be an int')
      if (requester === userId) fail(400, 'M_UNKNOWN', 'Cannot use admin API to login as self')
      const token = `syt_${randomBytes(18).toString('base64url')}`
      if (this.state.users.has(userId)) {
        this.state.tokens.set(token, userId)
        this.state.puppetTokens.set(token, { validUntilMs: validUntilMs as number | null })
      }
      return { status: 200, body: { access_token: token } }
    })
  }

  /** Any string: unknown, remote and malformed users are 200 with no rooms (t2b–t2f). */
  private joinedRooms (userId: string): Answer {
    const rooms = [...this.state.rooms.values()].filter((room) => room.members.get(userId) === 'join').map((room) => room.id)
    return { status: 200, body: { joined_rooms: rooms, total: rooms.length } }
  }

  /** The user ID is parsed before the token; a non-admin may whois themselves (x3d). */
  private whois (req: Incoming, userId: string): Answer {
    parseUserId(userId)
    const { userId: requester } = this.requester(req)
    if (requester !== userId && this.state.users.get(requester)?.admin !== true) fail(403, 'M_FORBIDDEN', 'You are not a server admin')
    if (domainOf(userId) !== this.serverName) fail(400, 'M_UNKNOWN', 'Can only whois a local user')
    const seen = this.state.users.get(userId)?.lastSeenTs
    const connections = seen === undefined ? [] : [{ ip: '127.0.0.1', last_seen: seen, user_agent: 'node' }]
    return { status: 200, body: { user_id: userId, devices: { '': { sessions: [{ connections }] } } } }
  }

  /** The admin room APIs take a room ID only: an alias or a malformed ID is "Room not found" (t4c, t4d). */
  private knownRoom (roomId: string): SimRoom {
    const room = this.state.rooms.get(roomId)
    if (room === undefined) return fail(404, 'M_NOT_FOUND', 'Room not found')
    return room
  }

  /** GET /_synapse/admin/v1/rooms (t8): search_term on name, canonical alias and room ID; from/limit paging. */
  private roomList (params: URLSearchParams): Answer {
    const integer = (name: string, fallback: number) => {
      const value = params.get(name)
      if (value === null) return fallback
      if (!/^\d+$/.test(value)) fail(400, 'M_INVALID_PARAM', `Query parameter '${name}' must be a non-negative integer`)
      return Number(value)
    }
    const start = integer('from', 0)
    const limit = integer('limit', 100)
    const orderBy = params.get('order_by') ?? 'name'
    if (orderBy !== 'name' && orderBy !== 'joined_members') fail(400, 'M_INVALID_PARAM', `Unknown value for order_by: ${orderBy}`)
    const term = params.get('search_term')?.toLowerCase()
    const rooms = [...this.state.rooms.values()]
      .filter((room) => term === undefined || [room.name, room.canonicalAlias ?? '', room.id].some((text) => text.toLowerCase().includes(term)))
      .map((room) => roomSummary(room, this.serverName))
      .sort(orderBy === 'name'
        ? (a, b) => String(a.name) < String(b.name) ? -1 : String(a.name) > String(b.name) ? 1 : 0
        : (a, b) => Number(b.joined_members) - Number(a.joined_members))
    if (params.get('dir') === 'b') rooms.reverse()
    const body: Record<string, unknown> = { offset: start, rooms: rooms.slice(start, start + limit), total_rooms: rooms.length }
    if (start + limit < rooms.length) body.next_batch = start + limit
    if (start > 0) body.prev_batch = Math.max(0, start - limit)
    return { status: 200, body }
  }

  private nonce (): Answer {
    const nonce = randomBytes(16).toString('hex')
    this.nonces.add(nonce)
    return { status: 200, body: { nonce } }
  }

  /** UserID.from_string and the admin join servlet's checks, in Synapse's order. */
  private targetUser (content: Record<string, unknown>): string {
    if (!Object.hasOwn(content, 'user_id')) fail(400, 'M_MISSING_PARAM', 'Missing params: [\'user_id\']')
    const value = content.user_id
    if (Array.isArray(value)) {
      if (value[0] !== '@') fail(400, 'M_INVALID_PARAM', 'Expected UserID string to start with \'@\'')
      throw new AnswerError(internalError())
    }
    parseUserId(value)
    const userId = value as string
    if (domainOf(userId) !== this.serverName) fail(400, 'M_UNKNOWN', 'This endpoint can only be used with local users')
    if (!this.state.users.has(userId)) fail(404, 'M_NOT_FOUND', 'User not found')
    return userId
  }

  private join (requester: string, identifier: string, req: Incoming): Answer {
    const userId = this.targetUser(parseJsonObject(req.body))
    const { room } = resolveRoom(this.state, identifier)
    if (room === undefined) {
      if (req.params.has('server_name')) fail(502, 'M_UNKNOWN', 'Failed to make_join via any server')
      return fail(404, 'M_UNKNOWN', 'Can\'t join remote room because no servers that are in the room have been provided.')
    }
    return adminJoin(this.state, requester, room, userId)
  }
}

export async function startHomeserver (options: HomeserverOptions = {}, port = 0): Promise<{ homeserver: SimulatedHomeserver, url: string }> {
  const homeserver = new SimulatedHomeserver(options)
  const url = await homeserver.listen(port)
  return { homeserver, url }
}
