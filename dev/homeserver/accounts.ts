/**
 * Accounts on the simulated homeserver, as Synapse 1.163.2 and 1.67.0 answered them in
 * test/fixtures/synapse/modern-1.163.2.json and v1.67-account-actions.json (case ids in
 * brackets; versions-findings.md lists the differences): the user lookup and `PUT` of the admin
 * user API with `locked` (l*), suspension (s*), devices and `delete_devices` (d*), password
 * reset (p*), deactivation with erase (x*), password login, and sending and reading messages.
 * What differs between the versions is read from the profile (versions.ts), never the version string.
 * Shared-secret registration follows Synapse's documentation (not recorded).
 */
import { createHmac, randomBytes } from 'node:crypto'
import { AnswerError, domainOf, fail, internalError, matrixError, parseJsonObject, parseUserId, type Answer } from './answers.js'
import { setMembership } from './rooms.js'
import type { HomeserverState, SimRoom, SimUser } from './state.js'
import type { SynapseProfile } from './versions.js'

export interface NewAccount {
  /** The localpart, e.g. "jill" for @jill:test.local. */
  localpart: string
  password: string
  /** Default: the localpart, as Synapse sets it. */
  displayname?: string
  admin?: boolean
  /** The device of the access token registration issues; default: a random one. */
  deviceId?: string
}

export interface Session { userId: string, accessToken: string, deviceId: string }

/** A sent m.room.message, for the client API's /messages. */
interface SentMessage { eventId: string, sender: string, content: Record<string, unknown>, ts: number }

const lockedAnswer = () => matrixError(401, 'M_USER_LOCKED', 'User account has been locked', { soft_logout: true })

/** Python's truthiness, which is how Synapse reads `logout_devices` (p10: "yes" is accepted). */
function pythonTruthy (value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0
  if (typeof value === 'object' && value !== null) return Object.keys(value).length > 0
  return Boolean(value)
}

/** pydantic's `input_value=…, input_type=…` for a JSON value. */
function pydanticInput (value: unknown): string {
  if (typeof value === 'string') return `input_value='${value}', input_type=str`
  if (typeof value === 'number') return `input_value=${value}, input_type=${Number.isInteger(value) ? 'int' : 'float'}`
  if (value === null) return 'input_value=None, input_type=NoneType'
  return `input_value=${JSON.stringify(value)}, input_type=${Array.isArray(value) ? 'list' : 'dict'}`
}

function deviceIdFor (): string {
  return Array.from(randomBytes(10), (byte) => String.fromCharCode(65 + (byte % 26))).join('')
}

export class Accounts {
  private readonly passwords = new Map<string, string>()
  /** access token → the device it belongs to; a token missing here belongs to the user's first device. */
  private readonly tokenDevices = new Map<string, string>()
  private readonly messages = new Map<string, SentMessage[]>()
  /** The homeserver's own URL, for the login answer's `well_known`; set when it listens. */
  baseUrl = 'http://127.0.0.1/'

  constructor (
    private readonly state: HomeserverState,
    private readonly profile: SynapseProfile,
    /** `deactivated` and `shadow_banned` as booleans whatever the version (HomeserverOptions.deactivatedAsBoolean). */
    private readonly deactivatedAsBoolean: boolean
  ) {}

  private get serverName (): string { return this.state.serverName }

  /** A new local user with a password and one logged-in device (for tests, and shared-secret registration). */
  create (account: NewAccount): Session {
    const userId = `@${account.localpart}:${this.serverName}`
    const user: SimUser = { admin: account.admin ?? false, deactivated: false, shadowBanned: false, creationTs: Math.floor(Date.now() / 1000), devices: [] }
    if (account.displayname !== undefined) user.displayname = account.displayname
    this.state.users.set(userId, user)
    this.passwords.set(userId, account.password)
    return this.startSession(userId, account.deviceId)
  }

  /** The device an access token belongs to (whoami's `device_id`). */
  deviceOf (token: string, userId: string): string | undefined {
    return this.tokenDevices.get(token) ?? this.state.users.get(userId)?.devices[0]
  }

  /** Applied to every request made with a user's own token (l3: a locked user's tokens answer 401). */
  checkNotLocked (userId: string): void {
    if (this.profile.lockEnforced && this.state.users.get(userId)?.locked === true) throw new AnswerError(lockedAnswer())
  }

  private startSession (userId: string, deviceId = deviceIdFor()): Session {
    const user = this.state.users.get(userId) as SimUser
    if (!user.devices.includes(deviceId)) user.devices.push(deviceId)
    const accessToken = `syt_${randomBytes(18).toString('base64url')}`
    this.state.tokens.set(accessToken, userId)
    this.tokenDevices.set(accessToken, deviceId)
    return { userId, accessToken, deviceId }
  }

  /** Shared-secret registration, as Synapse's admin API documentation describes it. */
  register (body: string, sharedSecret: string, nonces: Set<string>): Answer {
    const content = parseJsonObject(body) as { nonce?: string, username?: string, password?: string, admin?: boolean, mac?: string, displayname?: string }
    if (typeof content.nonce !== 'string' || !nonces.delete(content.nonce)) return matrixError(400, 'M_UNKNOWN', 'unrecognised nonce')
    const expected = createHmac('sha1', sharedSecret)
      .update(`${content.nonce}\x00${String(content.username)}\x00${String(content.password)}\x00${content.admin === true ? 'admin' : 'notadmin'}`)
      .digest('hex')
    if (content.mac !== expected) return matrixError(403, 'M_FORBIDDEN', 'HMAC incorrect')
    if (this.state.users.has(`@${String(content.username)}:${this.serverName}`)) return matrixError(400, 'M_USER_IN_USE', 'User ID already taken.')
    const session = this.create({ localpart: String(content.username), password: String(content.password), admin: content.admin === true, displayname: content.displayname })
    return { status: 200, body: { access_token: session.accessToken, user_id: session.userId, home_server: this.serverName, device_id: session.deviceId } }
  }

  /**
   * POST /_matrix/client/v3/login, m.login.password, with a full user ID (l4, l8, p6, p7, x4) or a
   * localpart: the password, then deactivation (x4: the errcode is per version; 1.67 says so even
   * for a wrong password), then the lock (l4; a wrong password is M_FORBIDDEN).
   */
  login (body: string): Answer {
    const content = parseJsonObject(body) as { identifier?: { user?: unknown }, user?: unknown, password?: unknown, device_id?: unknown }
    const given = String(content.identifier?.user ?? content.user)
    const userId = given.startsWith('@') ? given : `@${given}:${this.serverName}`
    const password = this.passwords.get(userId)
    const user = this.state.users.get(userId)
    const deactivated = () => this.profile.deactivatedLoginErrcode === 'M_USER_DEACTIVATED'
      ? matrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated')
      : matrixError(403, 'M_FORBIDDEN', 'Invalid username or password')
    if (user?.deactivated === true && this.profile.deactivatedBeforePassword) return deactivated()
    if (user === undefined || password === undefined || password !== content.password) return matrixError(403, 'M_FORBIDDEN', 'Invalid username or password')
    if (user.deactivated) return deactivated()
    if (this.profile.lockEnforced && user.locked === true) return lockedAnswer()
    const session = this.startSession(userId, typeof content.device_id === 'string' ? content.device_id : undefined)
    return {
      status: 200,
      body: { user_id: userId, access_token: session.accessToken, home_server: this.serverName, device_id: session.deviceId, well_known: { 'm.homeserver': { base_url: this.baseUrl } } }
    }
  }

  /** Removes one token (client logout); the device stays. */
  forgetToken (token: string): void {
    this.tokenDevices.delete(token)
  }

  /** GET /_synapse/admin/v2/users/{id} (g4, l2, s2, x2, x8, x11): flags 0/1 in 1.67, account-state fields from 1.163 on. */
  lookup (userId: string, status = 200): Answer {
    parseUserId(userId)
    if (domainOf(userId) !== this.serverName) return matrixError(400, 'M_UNKNOWN', 'Can only look up local users')
    const user = this.state.users.get(userId)
    if (user === undefined) return matrixError(404, 'M_NOT_FOUND', 'User not found')
    const flag = (value: boolean) => this.deactivatedAsBoolean ? value : Number(value)
    const versionFlag = (value: boolean) => this.profile.flagsAsBooleans ? value : Number(value)
    const accountState = {
      locked: user.locked ?? false,
      suspended: user.suspended ?? false,
      erased: user.erased ?? false,
      last_seen_ts: user.lastSeenTs ?? null,
      consent_ts: null
    }
    return {
      status,
      body: {
        name: userId,
        is_guest: versionFlag(false),
        admin: versionFlag(user.admin),
        consent_version: null,
        consent_server_notice_sent: null,
        appservice_id: null,
        creation_ts: user.creationTs,
        user_type: null,
        deactivated: flag(user.deactivated),
        shadow_banned: flag(user.shadowBanned),
        displayname: user.displayname === undefined ? userId.slice(1, userId.indexOf(':')) : user.displayname,
        avatar_url: user.avatarUrl ?? null,
        threepids: [],
        external_ids: [],
        ...(this.profile.accountStateFields ? accountState : {})
      }
    }
  }

  /**
   * PUT /_synapse/admin/v2/users/{id}: only `locked` is simulated (other fields are ignored).
   * 1.67 ignores `locked`, whatever its value (l1, l9); 1.163 checks its type (l9) and stores it (l1, l5, l6, x15).
   * An unknown local user is created (201), without the lock (l10).
   */
  putUser (userId: string, body: string): Answer {
    parseUserId(userId)
    if (domainOf(userId) !== this.serverName) return matrixError(400, 'M_UNKNOWN', 'This endpoint can only be used with local users')
    const content = parseJsonObject(body)
    const user = this.state.users.get(userId)
    if (this.profile.lockEnforced && Object.hasOwn(content, 'locked') && typeof content.locked !== 'boolean') {
      fail(400, 'M_UNKNOWN', '\'locked\' parameter is not of type boolean')
    }
    if (user === undefined) {
      this.state.users.set(userId, { admin: false, deactivated: false, shadowBanned: false, creationTs: Math.floor(Date.now() / 1000), devices: [] })
      return this.lookup(userId, 201)
    }
    if (this.profile.lockEnforced && typeof content.locked === 'boolean') user.locked = content.locked
    return this.lookup(userId)
  }

  /**
   * PUT /_synapse/admin/v1/suspend/{id} {"suspend": bool} (s1–s11, x16): local users only, known
   * users only, then a strict boolean (pydantic's message); deactivated users can be suspended.
   * Only called when the version has the endpoint (1.67: 400 M_UNRECOGNIZED before the token).
   */
  suspend (userId: string, body: string): Answer {
    parseUserId(userId)
    if (domainOf(userId) !== this.serverName) return matrixError(400, 'M_UNKNOWN', 'Can only suspend local users')
    const user = this.state.users.get(userId)
    if (user === undefined) return matrixError(404, 'M_NOT_FOUND', 'User not found')
    const content = parseJsonObject(body)
    if (!Object.hasOwn(content, 'suspend')) {
      fail(400, 'M_MISSING_PARAM', `1 validation error for PutBody\nsuspend\n  Field required [type=missing, ${pydanticInput(content)}]\n    For further information visit https://errors.pydantic.dev/2.14/v/missing`)
    }
    if (typeof content.suspend !== 'boolean') {
      fail(400, 'M_BAD_JSON', `1 validation error for PutBody\nsuspend\n  Input should be a valid boolean [type=bool_type, ${pydanticInput(content.suspend)}]\n    For further information visit https://errors.pydantic.dev/2.14/v/bool_type`)
    }
    user.suspended = content.suspend as boolean
    return { status: 200, body: { [`user_${userId}_suspended`]: user.suspended } }
  }

  /** GET /_synapse/admin/v2/users/{id}/devices (d1, d4, d8, d10); all-null "last seen" for a device never used. */
  devices (userId: string): Answer {
    const user = this.localUser(userId)
    const devices = user.devices.map((deviceId) => ({
      user_id: userId,
      device_id: deviceId,
      display_name: null,
      last_seen_user_agent: user.lastSeenTs === undefined ? null : 'node',
      last_seen_ts: user.lastSeenTs ?? null,
      last_seen_ip: user.lastSeenTs === undefined ? null : '127.0.0.1'
    }))
    return { status: 200, body: { devices, total: devices.length } }
  }

  /** POST /_synapse/admin/v2/users/{id}/delete_devices (d2, d5, d6, d9): unknown IDs are ignored; the devices' tokens stop working (d3, d7). */
  deleteDevices (userId: string, body: string): Answer {
    const user = this.localUser(userId)
    const content = parseJsonObject(body)
    if (!Object.hasOwn(content, 'devices')) fail(400, 'M_MISSING_PARAM', 'Missing params: [\'devices\']')
    const removed = new Set(Array.isArray(content.devices) ? content.devices.map(String) : [])
    this.removeDevices(userId, user, (deviceId) => removed.has(deviceId))
    return { status: 200, body: {} }
  }

  /**
   * POST /_synapse/admin/v1/reset_password/{id} (p1–p13): no password policy (p8); `logout_devices`
   * (default true, Python truthiness: p10) ends every session of the user (p4, p5); unknown and
   * remote users are both 404 "Unknown user" (p11, p12).
   */
  resetPassword (userId: string, body: string): Answer {
    const content = parseJsonObject(body)
    if (!Object.hasOwn(content, 'new_password')) fail(400, 'M_MISSING_PARAM', 'Missing params: [\'new_password\']')
    const user = this.state.users.get(userId)
    if (user === undefined) return matrixError(404, 'M_NOT_FOUND', 'Unknown user')
    // Synapse hashes whatever it is given: a number is a Python TypeError (probed).
    if (typeof content.new_password !== 'string') throw new AnswerError(internalError())
    this.passwords.set(userId, content.new_password)
    if (pythonTruthy(content.logout_devices ?? true)) this.endSessions(userId, user)
    return { status: 200, body: {} }
  }

  /**
   * POST /_synapse/admin/v1/deactivate/{id} {"erase"?} (x1–x14): the same answer on every repeat
   * (x3, x9, x10); ends sessions, leaves every room (x6); erase clears the display name and avatar
   * and marks the user erased (x8, x11), also when it comes with a repeat (x10).
   */
  deactivate (userId: string, body: string): Answer {
    const content = parseJsonObject(body, true)
    parseUserId(userId)
    if (domainOf(userId) !== this.serverName) fail(400, 'M_UNKNOWN', 'Can only deactivate local users')
    const user = this.state.users.get(userId)
    if (user === undefined) return matrixError(404, 'M_NOT_FOUND', 'User not found')
    const erase = content.erase ?? false
    if (typeof erase !== 'boolean') fail(400, 'M_BAD_JSON', 'Param \'erase\' must be a boolean, if given')
    user.deactivated = true
    // The password is kept: 1.67 checks it before saying the account is deactivated (x4).
    this.endSessions(userId, user)
    for (const room of this.state.rooms.values()) {
      const membership = room.members.get(userId)
      if (membership === 'join' || membership === 'invite') setMembership(this.state, room, userId, 'leave', userId)
    }
    if (erase) {
      user.erased = true
      user.displayname = null
      user.avatarUrl = null
    }
    return { status: 200, body: { id_server_unbind_result: 'success' } }
  }

  /** PUT /_matrix/client/v3/rooms/{id}/send/m.room.message/{txn} (s3, s7): 1.163 refuses a suspended sender. */
  send (userId: string, roomId: string, body: string): Answer {
    const content = parseJsonObject(body)
    if (this.profile.suspendEndpoint && this.state.users.get(userId)?.suspended === true) {
      return matrixError(403, 'M_USER_SUSPENDED', 'Sending messages while account is suspended is not allowed.')
    }
    const room = this.state.rooms.get(roomId)
    if (room === undefined && this.profile.sendToUnknownRoomSaysUnknownRoom) return matrixError(403, 'M_FORBIDDEN', 'Unknown room')
    const membership = room?.members.get(userId)
    if (room === undefined || membership !== 'join') return matrixError(403, 'M_FORBIDDEN', this.notInRoom(userId, roomId, room))
    const eventId = `$sim${this.state.nextEvent++}`
    const sent = this.messages.get(roomId) ?? []
    sent.push({ eventId, sender: userId, content, ts: Date.now() })
    this.messages.set(roomId, sent)
    return { status: 200, body: { event_id: eventId } }
  }

  /**
   * GET /_matrix/client/v3/rooms/{id}/messages?dir=b&limit=N (s4): a suspended user can read. The
   * simulated timeline holds only the messages sent through the simulator, newest first.
   */
  readMessages (userId: string, roomId: string, params: URLSearchParams): Answer {
    const room = this.state.rooms.get(roomId)
    if (room === undefined || room.members.get(userId) !== 'join') return matrixError(403, 'M_FORBIDDEN', `User ${userId} not in room ${roomId}, and room previews are disabled`)
    const limit = Number(params.get('limit') ?? '10')
    const now = Date.now()
    const chunk = [...(this.messages.get(roomId) ?? [])].reverse().slice(0, limit).map((message) => ({
      type: 'm.room.message',
      room_id: roomId,
      sender: message.sender,
      content: message.content,
      origin_server_ts: message.ts,
      unsigned: { age: now - message.ts },
      event_id: message.eventId,
      user_id: message.sender,
      age: now - message.ts
    }))
    return { status: 200, body: { chunk, start: `t${this.state.nextEvent}`, end: `t${this.state.nextEvent - chunk.length}` } }
  }

  /** Event auth's refusal of a sender who is not joined (probed); 1.67 names the sender's member event, as Python prints it. */
  private notInRoom (userId: string, roomId: string, room: SimRoom | undefined): string {
    if (!this.profile.notInRoomNamesMemberEvent) return `User ${userId} not in room ${roomId}`
    const event = room?.members.has(userId) === true ? room.memberEvents.get(userId) : undefined
    const detail = event === undefined ? 'None' : `<FrozenEventV3 event_id=${event.eventId}, type=m.room.member, state_key=${userId}, outlier=0>`
    return `User ${userId} not in room ${roomId} (${detail})`
  }

  /** The device endpoints' user checks (d8–d10). */
  private localUser (userId: string): SimUser {
    parseUserId(userId)
    if (domainOf(userId) !== this.serverName) fail(400, 'M_UNKNOWN', 'Can only lookup local users')
    const user = this.state.users.get(userId)
    if (user === undefined) return fail(404, 'M_NOT_FOUND', 'Unknown user')
    return user
  }

  /** Every device and access token of the user, login-as tokens included. */
  private endSessions (userId: string, user: SimUser): void {
    this.removeDevices(userId, user, () => true)
    for (const [token, owner] of this.state.tokens) {
      if (owner === userId) this.dropToken(token)
    }
  }

  private removeDevices (userId: string, user: SimUser, removed: (deviceId: string) => boolean): void {
    for (const [token, owner] of this.state.tokens) {
      if (owner !== userId || this.state.puppetTokens.has(token)) continue
      const device = this.deviceOf(token, userId)
      if (device !== undefined && removed(device)) this.dropToken(token)
    }
    user.devices = user.devices.filter((deviceId) => !removed(deviceId))
  }

  private dropToken (token: string): void {
    this.state.tokens.delete(token)
    this.state.puppetTokens.delete(token)
    this.tokenDevices.delete(token)
  }
}
