import { Type } from '@sinclair/typebox'
import { problem } from '../errors.js'
import { RoomParams } from '../schemas.js'
import { roomMembers } from '../synapse/answers.js'
import { membersSelection } from '../synapse/streamed.js'
import { defineAction } from './action.js'

const MembersResult = Type.Object({
  room_id: Type.String(),
  members: Type.Array(Type.String(), { description: 'User IDs of the room\'s members, as Synapse lists them: one page.' }),
  total: Type.Integer({ description: 'How many members the room has in all.' }),
  next: Type.Optional(Type.String({ description: 'Pass as `?from=` for the next page; absent on the last page.' }))
})

export const MEMBERS_PAGE = { default: 1000, max: 10_000 } as const

/** A cursor is opaque to callers; inside it is the offset into Synapse's list. */
const cursorOf = (offset: number) => Buffer.from(`m1:${offset}`).toString('base64url')
function offsetOf (cursor: string): number | undefined {
  const match = /^m1:([0-9]{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  return match === null ? undefined : Number(match[1])
}

/** `?limit=` and `?from=`, checked here (the route takes no other query schema). */
function pageOf (query: unknown): { offset: number, limit: number } {
  const { limit, from } = (query ?? {}) as { limit?: unknown, from?: unknown }
  let size: number = MEMBERS_PAGE.default
  if (limit !== undefined) {
    size = typeof limit === 'string' && /^[0-9]{1,5}$/.test(limit) ? Number(limit) : 0
    if (size < 1 || size > MEMBERS_PAGE.max) throw problem('invalid_request', `limit must be a whole number from 1 to ${MEMBERS_PAGE.max}.`)
  }
  if (from === undefined) return { offset: 0, limit: size }
  const offset = typeof from === 'string' ? offsetOf(from) : undefined
  if (offset === undefined) throw problem('invalid_request', 'from must be a `next` cursor from an earlier page of this list.')
  return { offset, limit: size }
}

/** room.members.read: Synapse's admin members list (it refuses aliases, so they are resolved first), paged. */
export const roomMembersRead = defineAction({
  name: 'room.members.read',
  method: 'GET',
  url: '/v1/rooms/:roomIdOrAlias/members',
  acting: false,
  operationId: 'listRoomMembers',
  summary: 'List the members of a room',
  description: `The room's members as Synapse's admin API lists them, a page at a time: \`?limit=\` (default ${MEMBERS_PAGE.default}, at most ${MEMBERS_PAGE.max}) and \`?from=\` (the \`next\` of the page before). An alias is resolved to its room ID first.`,
  params: RoomParams,
  result: MembersResult,
  problems: ['invalid_room', 'room_not_local', 'room_not_found'],

  async run (context, { room }) {
    const roomId = (room as NonNullable<typeof room>).id
    const { offset, limit } = pageOf(context.query)
    // Synapse lists every member in one answer: it is read streamed and only this page is kept.
    const { members, total } = roomMembers(await context.synapse.roomMembers(roomId, membersSelection(offset, limit)))
    const end = offset + members.length
    return { room_id: roomId, members, total, ...(end < total && members.length > 0 ? { next: cursorOf(end) } : {}) }
  }
})
