import { Type } from '@sinclair/typebox'
import { RoomParams } from '../schemas.js'
import { roomMembers } from '../synapse/answers.js'
import { defineAction } from './action.js'

const MembersResult = Type.Object({
  room_id: Type.String(),
  members: Type.Array(Type.String(), { description: 'User IDs of the room\'s members, as Synapse lists them.' }),
  total: Type.Integer()
})

/** room.members.read: Synapse's admin members list (it refuses aliases, so they are resolved first). */
export const roomMembersRead = defineAction({
  name: 'room.members.read',
  method: 'GET',
  url: '/v1/rooms/:roomIdOrAlias/members',
  acting: false,
  operationId: 'listRoomMembers',
  summary: 'List the members of a room',
  description: 'The room\'s members as Synapse\'s admin API lists them. An alias is resolved to its room ID first.',
  params: RoomParams,
  result: MembersResult,
  problems: ['invalid_room', 'room_not_local', 'room_not_found'],

  async run (context, { room }) {
    const roomId = (room as NonNullable<typeof room>).id
    const members = roomMembers(await context.synapse.roomMembers(roomId))
    return { room_id: roomId, members, total: members.length }
  }
})
