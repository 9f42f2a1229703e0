import { Type } from '@sinclair/typebox'
import { isRoomIdOrAlias, isUserId } from './matrix-ids.js'

/** Ajv formats for the Matrix grammar; registered once in buildApp. */
export const MATRIX_FORMATS = {
  'matrix-user-id': isUserId,
  'matrix-room-id-or-alias': isRoomIdOrAlias
}

export const RoomParams = Type.Object({
  roomIdOrAlias: Type.String({
    format: 'matrix-room-id-or-alias',
    description: 'A room ID (!opaque:server, or !opaque for room version 12) or an alias (#name:server, with # sent as %23).',
    examples: ['%23helpdesk:example.com', '!abcdefghijklmnop:example.com']
  })
})

export const JoinBody = Type.Object({
  user_id: Type.String({ format: 'matrix-user-id', description: 'A local Matrix user ID.', examples: ['@alice:example.com'] })
}, { additionalProperties: false })

export const JoinResult = Type.Object({
  room_id: Type.String({ description: 'The room ID, resolved when an alias was given.' }),
  user_id: Type.String()
})

export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: Type.String(),
  request_id: Type.String(),
  matrix_errcode: Type.Optional(Type.String())
}, { description: 'RFC 9457 problem details' })
