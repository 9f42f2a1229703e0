/**
 * Checks of the account actions by their effect on a real Synapse, as a user would notice them:
 * can this user log in with this password (and if not, which errcode), is this access token
 * still accepted, can this user send to and read a room, what is the user's display name, which
 * devices does the user have. None of them changes anything except `login`, which opens a
 * session (a new device) when it succeeds.
 */
import { randomBytes } from 'node:crypto'
import type { Matrix } from './matrix.js'

const enc = encodeURIComponent

/** The outcome of an attempt: `ok`, or the errcode Synapse refused with (e.g. M_USER_LOCKED). */
export interface Outcome {
  ok: boolean
  status: number
  errcode?: string
  error?: string
}

const outcome = (status: number, json: any): Outcome => status >= 200 && status < 300
  ? { ok: true, status }
  : { ok: false, status, errcode: json?.errcode, error: json?.error }

/** Password login (m.login.password): on success the new session's token and device. */
export async function login (matrix: Matrix, userId: string, password: string): Promise<Outcome & { token?: string, deviceId?: string }> {
  const result = await matrix.call('POST', '/_matrix/client/v3/login', {
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password }
  })
  const base = outcome(result.status, result.json)
  return base.ok ? { ...base, token: result.json.access_token, deviceId: result.json.device_id } : base
}

/** Whether Synapse still accepts this access token (whoami); a refusal says why (M_UNKNOWN_TOKEN, M_USER_LOCKED). */
export async function tokenAccepted (matrix: Matrix, token: string): Promise<Outcome & { userId?: string }> {
  const result = await matrix.call('GET', '/_matrix/client/v3/account/whoami', { token })
  const base = outcome(result.status, result.json)
  return base.ok ? { ...base, userId: result.json.user_id } : base
}

/** Sends a text message as the token's user (M_USER_SUSPENDED when suspended on 1.163). */
export async function sendMessage (matrix: Matrix, token: string, roomId: string, body = 'hello'): Promise<Outcome & { eventId?: string }> {
  const txn = randomBytes(8).toString('hex')
  const result = await matrix.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, { token, body: { msgtype: 'm.text', body } })
  const base = outcome(result.status, result.json)
  return base.ok ? { ...base, eventId: result.json.event_id } : base
}

/** Reads the room's latest messages as the token's user (/messages, backwards). */
export async function readMessages (matrix: Matrix, token: string, roomId: string, limit = 10): Promise<Outcome & { bodies?: string[] }> {
  const result = await matrix.call('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=${limit}`, { token })
  const base = outcome(result.status, result.json)
  if (!base.ok) return base
  const bodies = (result.json.chunk as Array<{ type: string, content?: { body?: unknown } }>)
    .filter((event) => event.type === 'm.room.message')
    .map((event) => String(event.content?.body))
  return { ...base, bodies }
}

/** Whether an initial /sync as the token's user succeeds (a suspended user can still sync). */
export async function canSync (matrix: Matrix, token: string): Promise<Outcome> {
  const result = await matrix.call('GET', '/_matrix/client/v3/sync?timeout=0', { token })
  return outcome(result.status, result.json)
}

/** The user's display name as the admin user lookup shows it (null after an erasing deactivation). */
export async function displayName (matrix: Matrix, adminToken: string, userId: string): Promise<string | null> {
  return (await matrix.must('GET', `/_synapse/admin/v2/users/${enc(userId)}`, { token: adminToken })).displayname ?? null
}

/** The admin user lookup (flags are 0/1 on 1.67, booleans on 1.163; locked/suspended/erased only on 1.163). */
export async function lookupUser (matrix: Matrix, adminToken: string, userId: string): Promise<Record<string, any>> {
  return await matrix.must('GET', `/_synapse/admin/v2/users/${enc(userId)}`, { token: adminToken })
}

/** The user's device IDs, sorted. */
export async function deviceIds (matrix: Matrix, adminToken: string, userId: string): Promise<string[]> {
  const json = await matrix.must('GET', `/_synapse/admin/v2/users/${enc(userId)}/devices`, { token: adminToken })
  return (json.devices as Array<{ device_id: string }>).map((device) => device.device_id).sort()
}
