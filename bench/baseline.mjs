// The benchmark's baseline: a bare Fastify + undici proxy making the same upstream calls as the
// gateway (user lookup, then join) with no auth, no validation, no audit and no logging.
import Fastify from 'fastify'
import { Pool } from 'undici'

const synapse = process.env.SYNAPSE_URL
const token = process.env.SYNAPSE_ADMIN_TOKEN
const pool = new Pool(synapse, { connections: 64 })
const app = Fastify({ logger: false })

app.get('/healthz', async () => ({ status: 'ok' }))

app.post('/v1/rooms/:room/members', async (request, reply) => {
  const userId = request.body.user_id
  const lookup = await pool.request({ method: 'GET', path: `/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, headers: { authorization: `Bearer ${token}` } })
  await lookup.body.json()
  const join = await pool.request({
    method: 'POST',
    path: `/_synapse/admin/v1/join/${encodeURIComponent(request.params.room)}`,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: userId })
  })
  const answer = await join.body.json()
  reply.code(join.statusCode)
  return { room_id: answer.room_id, user_id: userId }
})

const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.stdout.write(`Server listening at ${address}\n`)
