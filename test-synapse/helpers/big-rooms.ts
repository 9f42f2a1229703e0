/**
 * Rooms at an organisation's scale in the real Synapse (issue 18): a public room with at least
 * 1,000 members (accounts by shared-secret registration, in parallel, joined by the admin join API)
 * and a room whose state holds custom state events of 60 KB. Owned by the gateway's account, with
 * canonical aliases the tier's policy patterns can match.
 */
import type { Matrix, MatrixUser } from './matrix.js'
import type { World } from './scenarios.js'

const enc = encodeURIComponent

/** How many accounts are registered or joined at once. */
const PARALLEL = 16

async function inParallel<T> (items: T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < items.length) await work(items[next++] as T)
  }))
}

export interface BigRoom { roomId: string, alias: string, members: string[] }

/** A public room of `count` registered members plus the gateway's account (power 100). */
export async function createMembersRoom (world: World, count: number): Promise<BigRoom> {
  const { matrix, admin } = world
  const roomId = await matrix.createRoom(admin, { preset: 'public_chat', aliasName: 'bigroom', name: 'Company-wide' })
  const members: string[] = []
  await inParallel(Array.from({ length: count }, (_, i) => i), async (i) => {
    const user = await matrix.register(`m${i}`)
    await matrix.must('POST', `/_synapse/admin/v1/join/${enc(roomId)}`, { token: admin.token, body: { user_id: user.userId } })
    members.push(user.userId)
  })
  return { roomId, alias: matrix.alias('bigroom'), members }
}

export const BIG_EVENT_CHARACTERS = 60_000

/** An invite-only room with `events` custom state events of 60 KB each and `count` joined members. */
export async function createBigStateRoom (world: World, events: number, count: number): Promise<BigRoom> {
  const { matrix, admin } = world
  const roomId = await matrix.createRoom(admin, { preset: 'private_chat', aliasName: 'bigstate', name: 'Big state' })
  for (let n = 0; n < events; n++) {
    await matrix.must('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/org.example.big/${n}`, {
      token: admin.token,
      body: { data: `${n}`.padEnd(BIG_EVENT_CHARACTERS, '.') }
    })
  }
  const members: string[] = []
  for (let i = 0; i < count; i++) {
    const user = await matrix.register(`s${i}`)
    await matrix.invite(admin, roomId, user.userId)
    await matrix.join(user, roomId)
    members.push(user.userId)
  }
  return { roomId, alias: matrix.alias('bigstate'), members }
}

/** A fresh account, in no room. */
export async function newcomer (matrix: Matrix, name: string): Promise<MatrixUser> {
  return await matrix.register(name)
}
