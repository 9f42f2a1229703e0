/**
 * Records how a real Synapse answers every exchange the gateway makes today, and those the
 * account actions need (lock, suspend, devices, password reset, deactivation), the way
 * test/fixtures/synapse/*.json were made: case id, request (method, path, headers, body),
 * response (status, headers, body, verbatim), ms; tokens redacted.
 *
 *   npx tsx scripts/synapse/record.ts RUNNING.json OUT.json [ONLY]
 *
 * RUNNING.json is what scripts/synapse/start.sh (newest) or the shared 1.67 kit wrote. Every
 * account and room is new (names carry a run id, removed again in OUT.json), so it can run
 * against a Synapse that already holds data. Run it against both versions; see
 * test/fixtures/synapse/README.md.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { registrationMac } from '../../src/bootstrap-admin.js'

interface Running { base_url: string, server_name: string, version: string, registration_shared_secret: string, admin_user_id: string, admin_access_token: string }
interface Exchange {
  case: string
  request: { method: string, path: string, headers: Record<string, string>, body: unknown }
  response: { status: number, reason: string, headers: Record<string, string>, body: unknown }
  ms: number
}

// ONLY: a case id prefix (`a` for room.adopt's cases); only those are written.
const [runningPath, outPath, only] = process.argv.slice(2)
if (runningPath === undefined || outPath === undefined) {
  process.stderr.write('usage: tsx scripts/synapse/record.ts RUNNING.json OUT.json [ONLY]\n')
  process.exit(2)
}
const running = JSON.parse(readFileSync(runningPath, 'utf8')) as Running
const base = running.base_url
const server = running.server_name
const run = randomBytes(3).toString('hex')
const enc = encodeURIComponent
const exchanges: Exchange[] = []
/** token → placeholder, for redaction. */
const tokens = new Map<string, string>([[running.admin_access_token, '<redacted:admin-token>']])
const admin = { userId: running.admin_user_id, token: running.admin_access_token }

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'
interface Answer { status: number, json: any }

async function raw (method: Method, path: string, token: string | undefined, body: unknown): Promise<{ answer: Answer, exchange: Omit<Exchange, 'case'> }> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (token !== undefined) headers.Authorization = `Bearer ${token}`
  const started = performance.now()
  const response = await request(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), headersTimeout: 60_000, bodyTimeout: 60_000 })
  const text = await response.body.text()
  const ms = Math.round((performance.now() - started) * 10) / 10
  let json: any
  try { json = JSON.parse(text) } catch { json = text }
  const responseHeaders: Record<string, string> = {}
  for (const name of Object.keys(response.headers).sort()) responseHeaders[name] = String(response.headers[name])
  return {
    answer: { status: response.statusCode, json },
    exchange: {
      request: { method, path, headers, body: body ?? null },
      response: { status: response.statusCode, reason: response.statusText ?? '', headers: responseHeaders, body: json },
      ms
    }
  }
}

/** One recorded exchange. */
async function rec (id: string, what: string, method: Method, path: string, options: { token?: string, body?: unknown } = {}): Promise<Answer> {
  const { answer, exchange } = await raw(method, path, options.token, options.body)
  // Any token an answer issues (a login the case itself makes) is redacted like the known ones.
  const issued = (answer.json as { access_token?: unknown } | null)?.access_token
  if (typeof issued === 'string' && !tokens.has(issued)) tokens.set(issued, '<redacted:issued-token>')
  exchanges.push({ case: `${id} ${what}`, ...exchange })
  return answer
}

/** Setup, not recorded; a non-2xx answer stops the run. */
async function must (method: Method, path: string, options: { token?: string, body?: unknown } = {}): Promise<any> {
  const { answer } = await raw(method, path, options.token, options.body)
  if (answer.status < 200 || answer.status > 299) throw new Error(`setup: ${method} ${path} answered ${answer.status} ${JSON.stringify(answer.json).slice(0, 300)}`)
  return answer.json
}

interface User { name: string, userId: string, token: string, password: string }

async function register (name: string, displayname?: string): Promise<User> {
  const username = `${name}-${run}`
  const password = `pw-${name}-${randomBytes(6).toString('hex')}`
  const { nonce } = await must('GET', '/_synapse/admin/v1/register')
  const json = await must('POST', '/_synapse/admin/v1/register', {
    body: { nonce, username, password, admin: false, displayname: displayname ?? name, mac: registrationMac(running.registration_shared_secret, nonce, username, password, false) }
  })
  tokens.set(json.access_token, `<redacted:user-token:${name}>`)
  return { name, userId: json.user_id, token: json.access_token, password }
}

async function login (user: User, password = user.password): Promise<Answer> {
  return (await raw('POST', '/_matrix/client/v3/login', undefined, { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password })).answer
}

const loginBody = (user: User, password: string) => ({ type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password })

async function createRoom (owner: User | typeof admin, body: Record<string, unknown>): Promise<string> {
  return (await must('POST', '/_matrix/client/v3/createRoom', { token: owner.token, body: { visibility: 'private', ...body } })).room_id
}

const joinAs = async (user: User, room: string) => await must('POST', `/_matrix/client/v3/join/${enc(room)}`, { token: user.token, body: {} })
const send = (room: string) => `/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/${randomBytes(6).toString('hex')}`
const v2user = (userId: string) => `/_synapse/admin/v2/users/${enc(userId)}`
const missing = `@nosuch-${run}:${server}`
const remote = '@someone:other.example'

// --- the world ----------------------------------------------------------------------------------
const [ana, bob, carl, ivan, jill, kim, lena, gina, hank, mia] = await Promise.all(
  ['ana', 'bob', 'carl', 'ivan', 'jill', 'kim', 'lena', 'gina', 'hank', 'mia'].map(async (name) => await register(name, `${name[0]?.toUpperCase()}${name.slice(1)} Example`)))
if (ana === undefined || bob === undefined || carl === undefined || ivan === undefined || jill === undefined || kim === undefined || lena === undefined || gina === undefined || hank === undefined || mia === undefined) throw new Error('setup')
const publicRoom = await createRoom(admin, { preset: 'public_chat', room_alias_name: `pub-${run}`, name: 'Public room' })
const bobRoom = await createRoom(bob, { preset: 'private_chat', name: 'Bob\'s private room' })
const carlRoom = await createRoom(carl, { preset: 'private_chat', name: 'Carl\'s private room' })
for (const user of [ivan, gina, hank]) await joinAs(user, publicRoom)

// --- exchanges the gateway makes today -----------------------------------------------------------
await rec('g1', 'whoami of the admin token', 'GET', '/_matrix/client/v3/account/whoami', { token: admin.token })
await rec('g2', 'server_version without a token', 'GET', '/_synapse/admin/v1/server_version')
await rec('g3', 'server_version with the admin token', 'GET', '/_synapse/admin/v1/server_version', { token: admin.token })
await rec('g4', 'user lookup v2 of an active user (ana)', 'GET', v2user(ana.userId), { token: admin.token })
await rec('g5', 'user lookup v2 of the admin account', 'GET', v2user(admin.userId), { token: admin.token })
await rec('g6', 'user lookup v2 of an unknown local user', 'GET', v2user(missing), { token: admin.token })
await rec('g7', 'user lookup v2 of a remote user', 'GET', v2user(remote), { token: admin.token })
await rec('g8', 'joined_rooms of ivan (in the public room)', 'GET', `/_synapse/admin/v1/users/${enc(ivan.userId)}/joined_rooms`, { token: admin.token })
await rec('g9', 'joined_rooms of an unknown user', 'GET', `/_synapse/admin/v1/users/${enc(missing)}/joined_rooms`, { token: admin.token })
await rec('g10', 'directory lookup of the public room alias', 'GET', `/_matrix/client/v3/directory/room/${enc(`#pub-${run}:${server}`)}`, { token: admin.token })
await rec('g11', 'directory lookup of an unknown alias', 'GET', `/_matrix/client/v3/directory/room/${enc(`#nosuch-${run}:${server}`)}`, { token: admin.token })
await rec('g12', 'admin join of ana into the public room', 'POST', `/_synapse/admin/v1/join/${enc(publicRoom)}`, { token: admin.token, body: { user_id: ana.userId } })
await rec('g13', 'admin join of ana into bob\'s private room (admin not in it)', 'POST', `/_synapse/admin/v1/join/${enc(bobRoom)}`, { token: admin.token, body: { user_id: ana.userId } })
await rec('g14', 'admin join into an unknown room', 'POST', `/_synapse/admin/v1/join/${enc(`!nosuch-${run}:${server}`)}`, { token: admin.token, body: { user_id: ana.userId } })
await rec('g15', 'kick ana from the public room (admin created it)', 'POST', `/_matrix/client/v3/rooms/${enc(publicRoom)}/kick`, { token: admin.token, body: { user_id: ana.userId, reason: 'ticket 4711' } })
await rec('g16', 'kick ana again (already gone)', 'POST', `/_matrix/client/v3/rooms/${enc(publicRoom)}/kick`, { token: admin.token, body: { user_id: ana.userId } })
await rec('g17', 'kick in an unknown room', 'POST', `/_matrix/client/v3/rooms/${enc(`!nosuch-${run}:${server}`)}/kick`, { token: admin.token, body: { user_id: ana.userId } })
await rec('g18', 'kick in bob\'s room (admin not in it)', 'POST', `/_matrix/client/v3/rooms/${enc(bobRoom)}/kick`, { token: admin.token, body: { user_id: ana.userId } })
await rec('g19', 'room members of the public room', 'GET', `/_synapse/admin/v1/rooms/${enc(publicRoom)}/members`, { token: admin.token })
await rec('g20', 'room members of an unknown room', 'GET', `/_synapse/admin/v1/rooms/${enc(`!nosuch-${run}:${server}`)}/members`, { token: admin.token })
await rec('g21', 'room state of the public room', 'GET', `/_synapse/admin/v1/rooms/${enc(publicRoom)}/state`, { token: admin.token })
await rec('g22', 'room state filtered by type (m.room.power_levels)', 'GET', `/_synapse/admin/v1/rooms/${enc(publicRoom)}/state?type=m.room.power_levels`, { token: admin.token })
await rec('g23', 'room state filtered by type (m.room.member)', 'GET', `/_synapse/admin/v1/rooms/${enc(publicRoom)}/state?type=m.room.member`, { token: admin.token })
await rec('g24', 'room state of an unknown room', 'GET', `/_synapse/admin/v1/rooms/${enc(`!nosuch-${run}:${server}`)}/state`, { token: admin.token })
await rec('g25', 'room details of the public room', 'GET', `/_synapse/admin/v1/rooms/${enc(publicRoom)}`, { token: admin.token })
await rec('g26', 'room details of an unknown room', 'GET', `/_synapse/admin/v1/rooms/${enc(`!nosuch-${run}:${server}`)}`, { token: admin.token })
await rec('g27', 'make_room_admin of ana in bob\'s room (ana joined by g13)', 'POST', `/_synapse/admin/v1/rooms/${enc(bobRoom)}/make_room_admin`, { token: admin.token, body: { user_id: ana.userId } })
await rec('g28', 'make_room_admin of the admin account itself on carl\'s room it is not in', 'POST', `/_synapse/admin/v1/rooms/${enc(carlRoom)}/make_room_admin`, { token: admin.token, body: {} })
await rec('g29', 'make_room_admin in an unknown room', 'POST', `/_synapse/admin/v1/rooms/${enc(`!nosuch-${run}:${server}`)}/make_room_admin`, { token: admin.token, body: { user_id: ana.userId } })

// --- lock / unlock -----------------------------------------------------------------------------
const jillLogin = await login(jill)
tokens.set(jillLogin.json.access_token, '<redacted:user-token:jill-2>')
await rec('l1', 'lock jill', 'PUT', v2user(jill.userId), { token: admin.token, body: { locked: true } })
await rec('l2', 'lookup of the locked jill', 'GET', v2user(jill.userId), { token: admin.token })
await rec('l3', 'whoami with jill\'s token while locked', 'GET', '/_matrix/client/v3/account/whoami', { token: jill.token })
await rec('l4', 'login of the locked jill', 'POST', '/_matrix/client/v3/login', { body: loginBody(jill, jill.password) })
await rec('l5', 'lock jill again (already locked)', 'PUT', v2user(jill.userId), { token: admin.token, body: { locked: true } })
await rec('l6', 'unlock jill', 'PUT', v2user(jill.userId), { token: admin.token, body: { locked: false } })
await rec('l7', 'whoami with jill\'s token after unlock', 'GET', '/_matrix/client/v3/account/whoami', { token: jill.token })
const l8 = await rec('l8', 'login of jill after unlock', 'POST', '/_matrix/client/v3/login', { body: loginBody(jill, jill.password) })
if (typeof l8.json?.access_token === 'string') tokens.set(l8.json.access_token, '<redacted:issued-token>')
await rec('l9', 'lock a non-boolean value', 'PUT', v2user(jill.userId), { token: admin.token, body: { locked: 'yes' } })
await rec('l10', 'lock an unknown local user (PUT creates users!)', 'PUT', v2user(`@lockme-${run}:${server}`), { token: admin.token, body: { locked: true } })
await rec('l11', 'lock a remote user', 'PUT', v2user(remote), { token: admin.token, body: { locked: true } })

// --- suspend / unsuspend -----------------------------------------------------------------------
await rec('s1', 'suspend ivan', 'PUT', `/_synapse/admin/v1/suspend/${enc(ivan.userId)}`, { token: admin.token, body: { suspend: true } })
await rec('s2', 'lookup of the suspended ivan', 'GET', v2user(ivan.userId), { token: admin.token })
await rec('s3', 'suspended ivan sends a message', 'PUT', send(publicRoom), { token: ivan.token, body: { msgtype: 'm.text', body: 'hello' } })
await rec('s4', 'suspended ivan reads the room', 'GET', `/_matrix/client/v3/rooms/${enc(publicRoom)}/messages?dir=b&limit=1`, { token: ivan.token })
await rec('s5', 'suspend ivan again', 'PUT', `/_synapse/admin/v1/suspend/${enc(ivan.userId)}`, { token: admin.token, body: { suspend: true } })
await rec('s6', 'unsuspend ivan', 'PUT', `/_synapse/admin/v1/suspend/${enc(ivan.userId)}`, { token: admin.token, body: { suspend: false } })
await rec('s7', 'ivan sends a message after unsuspend', 'PUT', send(publicRoom), { token: ivan.token, body: { msgtype: 'm.text', body: 'hello again' } })
await rec('s8', 'suspend an unknown local user', 'PUT', `/_synapse/admin/v1/suspend/${enc(missing)}`, { token: admin.token, body: { suspend: true } })
await rec('s9', 'suspend a remote user', 'PUT', `/_synapse/admin/v1/suspend/${enc(remote)}`, { token: admin.token, body: { suspend: true } })
await rec('s10', 'suspend with a non-boolean', 'PUT', `/_synapse/admin/v1/suspend/${enc(ivan.userId)}`, { token: admin.token, body: { suspend: 'yes' } })
await rec('s11', 'suspend without a token', 'PUT', `/_synapse/admin/v1/suspend/${enc(ivan.userId)}`, { body: { suspend: true } })

// --- devices -------------------------------------------------------------------------------------
const kimSecond = await login(kim)
tokens.set(kimSecond.json.access_token, '<redacted:user-token:kim-2>')
const d1 = await rec('d1', 'devices of kim (two logins)', 'GET', `/_synapse/admin/v2/users/${enc(kim.userId)}/devices`, { token: admin.token })
const kimDevices = Array.isArray(d1.json?.devices) ? d1.json.devices.map((device: { device_id: string }) => device.device_id) : []
await rec('d2', 'delete one of kim\'s devices', 'POST', `/_synapse/admin/v2/users/${enc(kim.userId)}/delete_devices`, { token: admin.token, body: { devices: [kimSecond.json.device_id] } })
await rec('d3', 'whoami with the deleted device\'s token', 'GET', '/_matrix/client/v3/account/whoami', { token: kimSecond.json.access_token })
await rec('d4', 'devices of kim after', 'GET', `/_synapse/admin/v2/users/${enc(kim.userId)}/devices`, { token: admin.token })
await rec('d5', 'delete unknown device ids', 'POST', `/_synapse/admin/v2/users/${enc(kim.userId)}/delete_devices`, { token: admin.token, body: { devices: ['NOSUCHDEVICE'] } })
await rec('d6', 'delete all of kim\'s devices', 'POST', `/_synapse/admin/v2/users/${enc(kim.userId)}/delete_devices`, { token: admin.token, body: { devices: kimDevices } })
await rec('d7', 'whoami with kim\'s first token after', 'GET', '/_matrix/client/v3/account/whoami', { token: kim.token })
await rec('d8', 'devices of an unknown local user', 'GET', `/_synapse/admin/v2/users/${enc(missing)}/devices`, { token: admin.token })
await rec('d9', 'delete_devices of an unknown local user', 'POST', `/_synapse/admin/v2/users/${enc(missing)}/delete_devices`, { token: admin.token, body: { devices: [] } })
await rec('d10', 'devices of a remote user', 'GET', `/_synapse/admin/v2/users/${enc(remote)}/devices`, { token: admin.token })

// --- reset password -------------------------------------------------------------------------------
const lenaSecond = await login(lena)
tokens.set(lenaSecond.json.access_token, '<redacted:user-token:lena-2>')
const reset = (user: User) => `/_synapse/admin/v1/reset_password/${enc(user.userId)}`
await rec('p1', 'reset lena\'s password, logout_devices false', 'POST', reset(lena), { token: admin.token, body: { new_password: 'first new password for lena', logout_devices: false } })
await rec('p2', 'whoami with lena\'s old token after p1', 'GET', '/_matrix/client/v3/account/whoami', { token: lena.token })
await rec('p3', 'reset lena\'s password, logout_devices left out (default)', 'POST', reset(lena), { token: admin.token, body: { new_password: 'second new password for lena' } })
await rec('p4', 'whoami with lena\'s old token after p3', 'GET', '/_matrix/client/v3/account/whoami', { token: lena.token })
await rec('p5', 'whoami with lena\'s second token after p3', 'GET', '/_matrix/client/v3/account/whoami', { token: lenaSecond.json.access_token })
const p6 = await rec('p6', 'login with the new password', 'POST', '/_matrix/client/v3/login', { body: loginBody(lena, 'second new password for lena') })
if (typeof p6.json?.access_token === 'string') tokens.set(p6.json.access_token, '<redacted:issued-token>')
await rec('p7', 'login with the old password', 'POST', '/_matrix/client/v3/login', { body: loginBody(lena, lena.password) })
await rec('p8', 'reset to a one-character password', 'POST', reset(lena), { token: admin.token, body: { new_password: 'x', logout_devices: false } })
await rec('p9', 'reset without new_password', 'POST', reset(lena), { token: admin.token, body: { logout_devices: false } })
await rec('p10', 'reset with logout_devices not a boolean', 'POST', reset(lena), { token: admin.token, body: { new_password: 'third new password for lena', logout_devices: 'yes' } })
await rec('p11', 'reset an unknown local user', 'POST', `/_synapse/admin/v1/reset_password/${enc(missing)}`, { token: admin.token, body: { new_password: 'whatever password 1' } })
await rec('p12', 'reset a remote user', 'POST', `/_synapse/admin/v1/reset_password/${enc(remote)}`, { token: admin.token, body: { new_password: 'whatever password 1' } })
await rec('p13', 'reset with a non-admin token', 'POST', reset(lena), { token: mia.token, body: { new_password: 'whatever password 1' } })

// --- deactivate -----------------------------------------------------------------------------------
const deactivate = (user: User | string) => `/_synapse/admin/v1/deactivate/${enc(typeof user === 'string' ? user : user.userId)}`
await rec('x1', 'deactivate gina, no erase', 'POST', deactivate(gina), { token: admin.token, body: {} })
await rec('x2', 'lookup of the deactivated gina', 'GET', v2user(gina.userId), { token: admin.token })
await rec('x3', 'deactivate gina again', 'POST', deactivate(gina), { token: admin.token, body: {} })
await rec('x4', 'login of the deactivated gina', 'POST', '/_matrix/client/v3/login', { body: loginBody(gina, gina.password) })
await rec('x5', 'whoami with gina\'s old token', 'GET', '/_matrix/client/v3/account/whoami', { token: gina.token })
await rec('x6', 'joined_rooms of the deactivated gina', 'GET', `/_synapse/admin/v1/users/${enc(gina.userId)}/joined_rooms`, { token: admin.token })
await rec('x7', 'deactivate hank with erase', 'POST', deactivate(hank), { token: admin.token, body: { erase: true } })
await rec('x8', 'lookup of the erased hank', 'GET', v2user(hank.userId), { token: admin.token })
await rec('x9', 'deactivate hank again with erase', 'POST', deactivate(hank), { token: admin.token, body: { erase: true } })
await rec('x10', 'deactivate gina (already deactivated) now with erase', 'POST', deactivate(gina), { token: admin.token, body: { erase: true } })
await rec('x11', 'lookup of gina after the late erase', 'GET', v2user(gina.userId), { token: admin.token })
await rec('x12', 'deactivate an unknown local user', 'POST', deactivate(missing), { token: admin.token, body: {} })
await rec('x13', 'deactivate a remote user', 'POST', deactivate(remote), { token: admin.token, body: {} })
await rec('x14', 'deactivate with erase not a boolean', 'POST', deactivate(mia), { token: admin.token, body: { erase: 'yes' } })
await rec('x15', 'lock the deactivated gina', 'PUT', v2user(gina.userId), { token: admin.token, body: { locked: true } })
await rec('x16', 'suspend the deactivated gina', 'PUT', `/_synapse/admin/v1/suspend/${enc(gina.userId)}`, { token: admin.token, body: { suspend: true } })

// --- a big room -----------------------------------------------------------------------------------
const crowd = await Promise.all(Array.from({ length: 40 }, async (_, i) => await register(`crowd${i}`)))
const bigRoom = await createRoom(admin, { preset: 'public_chat', name: 'Big room' })
for (const user of crowd) await joinAs(user, bigRoom)
await rec('b1', 'room members of a room with 41 members', 'GET', `/_synapse/admin/v1/rooms/${enc(bigRoom)}/members`, { token: admin.token })
await rec('b2', 'room state of that room filtered by m.room.power_levels', 'GET', `/_synapse/admin/v1/rooms/${enc(bigRoom)}/state?type=m.room.power_levels`, { token: admin.token })

// --- room.adopt: make_room_admin for the admin account itself, then its own join --------------------
const [dora, eve] = await Promise.all(['dora', 'eve'].map(async (name) => await register(name)))
if (dora === undefined || eve === undefined) throw new Error('setup')
const doraRoom = await createRoom(dora, { preset: 'private_chat', name: 'Dora\'s private room' })
const doraSecond = await createRoom(dora, { preset: 'private_chat', name: 'Dora\'s second room' })
const doraPublic = await createRoom(dora, { preset: 'public_chat', name: 'Dora\'s public room' })
const leftRoom = await createRoom(dora, { preset: 'private_chat', name: 'Room its creator left' })
await must('POST', `/_matrix/client/v3/rooms/${enc(leftRoom)}/invite`, { token: dora.token, body: { user_id: eve.userId } })
await joinAs(eve, leftRoom)
await must('POST', `/_matrix/client/v3/rooms/${enc(leftRoom)}/leave`, { token: dora.token, body: {} })
const clientJoin = (room: string) => `/_matrix/client/v3/rooms/${enc(room)}/join`
await rec('a1', 'make_room_admin of the admin account itself on dora\'s private room it is not in', 'POST', `/_synapse/admin/v1/rooms/${enc(doraRoom)}/make_room_admin`, { token: admin.token, body: { user_id: admin.userId } })
await rec('a2', 'membership of the admin account after a1', 'GET', `/_synapse/admin/v1/rooms/${enc(doraRoom)}/state?type=m.room.member`, { token: admin.token })
await rec('a3', 'client join of the invited admin account (its own token)', 'POST', clientJoin(doraRoom), { token: admin.token, body: { reason: 'adopt' } })
await rec('a4', 'client join again (already joined)', 'POST', clientJoin(doraRoom), { token: admin.token, body: {} })
await rec('a5', 'power levels after a1 and a3', 'GET', `/_synapse/admin/v1/rooms/${enc(doraRoom)}/state?type=m.room.power_levels`, { token: admin.token })
await must('POST', `/_synapse/admin/v1/rooms/${enc(doraSecond)}/make_room_admin`, { token: admin.token, body: { user_id: admin.userId } })
await rec('a6', 'admin join API for the admin account itself, invited by make_room_admin', 'POST', `/_synapse/admin/v1/join/${enc(doraSecond)}`, { token: admin.token, body: { user_id: admin.userId } })
await rec('a7', 'client join of the admin account into a private room without an invite', 'POST', clientJoin(leftRoom), { token: admin.token, body: {} })
await rec('a8', 'client join of the admin account into a public room', 'POST', clientJoin(doraPublic), { token: admin.token, body: {} })
await rec('a9', 'client join into an unknown room', 'POST', clientJoin(`!nosuch-${run}:${server}`), { token: admin.token, body: {} })
await rec('a10', 'make_room_admin of the admin account where the only powerful member (the creator) left', 'POST', `/_synapse/admin/v1/rooms/${enc(leftRoom)}/make_room_admin`, { token: admin.token, body: { user_id: admin.userId } })

// --- write ------------------------------------------------------------------------------------------
let text = JSON.stringify(only === undefined ? exchanges : exchanges.filter((exchange) => exchange.case.startsWith(only)), null, 1)
for (const [token, placeholder] of tokens) text = text.replaceAll(token, placeholder)
text = text.replaceAll(`-${run}`, '')
writeFileSync(outPath, `${text}\n`)
process.stdout.write(`recorded ${exchanges.length} exchanges with Synapse ${running.version} in ${outPath}\n`)
