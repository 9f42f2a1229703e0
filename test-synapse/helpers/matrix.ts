/**
 * Builds the tier's world in a real Synapse through its own APIs: accounts by shared-secret
 * registration, rooms, memberships, power levels, bans and aliases through the client API, and
 * blocks, deactivations and state reads through the admin API. Every name carries a per-run id,
 * so runs against the same (persistent) Synapse never collide.
 */
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { registrationMac } from '../../src/bootstrap-admin.js'
import { targetFromEnv, type SynapseTarget } from './target.js'

export interface MatrixUser {
  userId: string
  token: string
}

/** A user as registered: also its password (for login checks) and the device its token belongs to. */
export interface RegisteredUser extends MatrixUser {
  password: string
  deviceId: string
}

export interface CallResult {
  status: number
  json: any
}

export type RoomPreset = 'public_chat' | 'private_chat'

export interface CreateRoomOptions {
  preset: RoomPreset
  /** The alias's local part (Synapse creates #<it>:server). */
  aliasName?: string
  name?: string
  /** m.space for a space. */
  type?: string
  powerLevels?: Record<string, unknown>
  invite?: string[]
}

const enc = encodeURIComponent

/** A run id: short, lower-case (Matrix local parts), different for every test file and run. */
export const newRunId = () => `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`

export class Matrix {
  readonly serverName: string
  readonly runId = newRunId()

  constructor (readonly target: SynapseTarget = targetFromEnv()) {
    this.serverName = target.serverName
  }

  /** A Matrix ID local part unique to this run. */
  local (name: string): string {
    return `${name}-${this.runId}`
  }

  userId (name: string): string {
    return `@${this.local(name)}:${this.serverName}`
  }

  alias (name: string): string {
    return `#${this.local(name)}:${this.serverName}`
  }

  /** One Client-Server or admin API call; Synapse's 429s (a Synapse with default rc_* limits) are waited out. */
  async call (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: { token?: string, body?: unknown } = {}): Promise<CallResult> {
    for (let attempt = 1; ; attempt++) {
      const result = await this.callOnce(method, path, options)
      const retryAfterMs = result.json?.retry_after_ms
      if (result.status !== 429 || typeof retryAfterMs !== 'number' || attempt === 10) return result
      await new Promise((resolve) => setTimeout(resolve, Math.min(retryAfterMs, 10_000)))
    }
  }

  private async callOnce (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: { token?: string, body?: unknown }): Promise<CallResult> {
    const response = await request(`${this.target.url}${path}`, {
      method,
      headers: {
        'content-type': 'application/json',
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` })
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      headersTimeout: 30_000,
      bodyTimeout: 30_000
    })
    const text = await response.body.text()
    let json: any
    try { json = JSON.parse(text) } catch { json = text }
    return { status: response.statusCode, json }
  }

  /** Like `call`, but a non-2xx answer is a setup failure that names the request and answer. */
  async must (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: { token?: string, body?: unknown } = {}): Promise<any> {
    const result = await this.call(method, path, options)
    if (result.status < 200 || result.status > 299) {
      throw new Error(`setup: ${method} ${path} answered ${result.status} ${JSON.stringify(result.json).slice(0, 300)}`)
    }
    return result.json
  }

  /** Shared-secret registration (HMAC-SHA1 over nonce, user, password, admin flag). */
  async register (name: string, options: { admin?: boolean, displayname?: string } = {}): Promise<RegisteredUser> {
    const admin = options.admin ?? false
    const username = this.local(name)
    const password = randomBytes(18).toString('base64url')
    const { nonce } = await this.must('GET', '/_synapse/admin/v1/register')
    const registered = await this.call('POST', '/_synapse/admin/v1/register', {
      body: {
        nonce,
        username,
        password,
        admin,
        ...(options.displayname === undefined ? {} : { displayname: options.displayname }),
        mac: registrationMac(this.target.sharedSecret, nonce, username, password, admin)
      }
    })
    if (registered.status !== 200) {
      const hint = registered.status === 403 ? ' (is SYNAPSE_TEST_SHARED_SECRET its registration_shared_secret?)' : ''
      throw new Error(`setup: registering ${username} answered ${registered.status} ${JSON.stringify(registered.json)}${hint}`)
    }
    return { userId: registered.json.user_id, token: registered.json.access_token, password, deviceId: registered.json.device_id }
  }

  async createRoom (owner: MatrixUser, options: CreateRoomOptions): Promise<string> {
    const answer = await this.must('POST', '/_matrix/client/v3/createRoom', {
      token: owner.token,
      body: {
        preset: options.preset,
        visibility: 'private',
        ...(options.aliasName === undefined ? {} : { room_alias_name: this.local(options.aliasName) }),
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.type === undefined ? {} : { creation_content: { type: options.type } }),
        ...(options.powerLevels === undefined ? {} : { power_level_content_override: options.powerLevels }),
        ...(options.invite === undefined ? {} : { invite: options.invite })
      }
    })
    return answer.room_id as string
  }

  async invite (by: MatrixUser, roomId: string, userId: string): Promise<void> {
    await this.must('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { token: by.token, body: { user_id: userId } })
  }

  async join (user: MatrixUser, roomIdOrAlias: string): Promise<void> {
    await this.must('POST', `/_matrix/client/v3/join/${enc(roomIdOrAlias)}`, { token: user.token, body: {} })
  }

  async ban (by: MatrixUser, roomId: string, userId: string): Promise<void> {
    await this.must('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/ban`, { token: by.token, body: { user_id: userId, reason: 'tier setup' } })
  }

  async powerLevels (adminToken: string, roomId: string): Promise<Record<string, any>> {
    return (await this.stateEvent(adminToken, roomId, 'm.room.power_levels', ''))?.content ?? {}
  }

  /** Read-modify-write of m.room.power_levels: `users` entries are merged, other keys replaced. */
  async setPowerLevels (by: MatrixUser, roomId: string, change: { users?: Record<string, number>, [key: string]: unknown }): Promise<void> {
    const current = await this.must('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, { token: by.token })
    const content = { ...current, ...change, users: { ...current.users, ...change.users } }
    await this.must('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, { token: by.token, body: content })
  }

  async setAlias (by: MatrixUser, alias: string, roomId: string): Promise<void> {
    await this.must('PUT', `/_matrix/client/v3/directory/room/${enc(alias)}`, { token: by.token, body: { room_id: roomId } })
  }

  async addSpaceChild (by: MatrixUser, spaceId: string, childId: string): Promise<void> {
    await this.must('PUT', `/_matrix/client/v3/rooms/${enc(spaceId)}/state/m.space.child/${enc(childId)}`, {
      token: by.token,
      body: { via: [this.serverName] }
    })
  }

  async block (admin: MatrixUser, roomId: string): Promise<void> {
    await this.must('PUT', `/_synapse/admin/v1/rooms/${enc(roomId)}/block`, { token: admin.token, body: { block: true } })
    const status = await this.must('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/block`, { token: admin.token })
    if (status.block !== true) throw new Error(`setup: ${roomId} is not blocked after PUT .../block: ${JSON.stringify(status)}`)
  }

  /** Deactivates the user and waits until Synapse has parted them from every room (it does that in the background). */
  async deactivate (admin: MatrixUser, userId: string): Promise<void> {
    await this.must('POST', `/_synapse/admin/v1/deactivate/${enc(userId)}`, { token: admin.token, body: { erase: false } })
    await waitFor(`Synapse to part the deactivated ${userId} from their rooms`, async () => (await this.joinedRooms(admin.token, userId)).length === 0)
  }

  /** The room's current state as the admin API reports it (works without being in the room). */
  async roomState (adminToken: string, roomId: string): Promise<Array<Record<string, any>>> {
    return (await this.must('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/state`, { token: adminToken })).state
  }

  async stateEvent (adminToken: string, roomId: string, type: string, stateKey: string): Promise<Record<string, any> | undefined> {
    return (await this.roomState(adminToken, roomId)).find((event) => event.type === type && event.state_key === stateKey)
  }

  /** The user's m.room.member content (membership, reason), or undefined when they never had one. */
  async membership (adminToken: string, roomId: string, userId: string): Promise<{ membership: string, reason?: string } | undefined> {
    return (await this.stateEvent(adminToken, roomId, 'm.room.member', userId))?.content
  }

  async joinedMembers (adminToken: string, roomId: string): Promise<string[]> {
    return ((await this.must('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/members`, { token: adminToken })).members as string[]).sort()
  }

  async joinedRooms (adminToken: string, userId: string): Promise<string[]> {
    return ((await this.must('GET', `/_synapse/admin/v1/users/${enc(userId)}/joined_rooms`, { token: adminToken })).joined_rooms as string[]).sort()
  }

  /** A room ID of this server that no room has. */
  unknownRoomId (): string {
    return `!nosuchroom${this.runId}:${this.serverName}`
  }
}

/** Polls `check` until it returns true; on timeout the error says what was awaited. */
export async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (error) {
      last = error
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`)
}
