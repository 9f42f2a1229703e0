// The benchmark's baseline: a bare Fastify + undici proxy making the same upstream calls as the
// gateway, with no auth, no validation, no policy, no audit and no logging:
//   join:    user lookup, then join;
//   remove:  user lookup, kick, and the room's details when the user was not in the room;
//   members: the room's member list.
// BASELINE_POOL (default 64) is the size of its connection pool towards the homeserver; the
// benchmark sets it to the gateway's SYNAPSE_MAX_CONCURRENCY.
import Fastify from 'fastify'
import { Pool } from 'undici'

const synapse = process.env.SYNAPSE_URL
const token = process.env.SYNAPSE_ADMIN_TOKEN
const pool = new Pool(synapse, { connections: Number(process.env.BASELINE_POOL ?? 64) })
const app = Fastify({ logger: false })
const enc = encodeURIComponent

async function call (method, path, body) {
  const response = await pool.request({
    method,
    path,
    headers: body === undefined ? { authorization: `Bearer ${token}` } : { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: response.statusCode, json: await response.body.json() }
}

app.get('/healthz', async () => ({ status: 'ok' }))

app.post('/v1/rooms/:room/members', async (request, reply) => {
  const userId = request.body.user_id
  await call('GET', `/_synapse/admin/v2/users/${enc(userId)}`)
  const join = await call('POST', `/_synapse/admin/v1/join/${enc(request.params.room)}`, { user_id: userId })
  reply.code(join.status)
  return { room_id: join.json.room_id, user_id: userId }
})

app.delete('/v1/rooms/:room/members/:userId', async (request) => {
  const { room, userId } = request.params
  await call('GET', `/_synapse/admin/v2/users/${enc(userId)}`)
  const kick = await call('POST', `/_matrix/client/v3/rooms/${enc(room)}/kick`, { user_id: userId })
  if (kick.status !== 200) await call('GET', `/_synapse/admin/v1/rooms/${enc(room)}`)
  return { room_id: room, user_id: userId, membership: 'leave', changed: kick.status === 200 }
})

app.get('/v1/rooms/:room/members', async (request) => {
  const members = await call('GET', `/_synapse/admin/v1/rooms/${enc(request.params.room)}/members`)
  return { room_id: request.params.room, members: members.json.members }
})

const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.stdout.write(`Server listening at ${address}\n`)
