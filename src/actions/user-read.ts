import { Type } from '@sinclair/typebox'
import { UserParams } from '../schemas.js'
import { joinedRooms } from '../synapse/answers.js'
import { defineAction } from './action.js'

/** Only what triage needs: never password hashes, third-party IDs, external IDs or sessions. */
const UserView = Type.Object({
  user_id: Type.String(),
  displayname: Type.Union([Type.String(), Type.Null()]),
  deactivated: Type.Boolean(),
  admin: Type.Boolean(),
  shadow_banned: Type.Boolean(),
  creation_ts: Type.Union([Type.Integer(), Type.Null()], { description: 'As Synapse reports it (seconds since the epoch in Synapse 1.67).' }),
  rooms: Type.Array(Type.String(), { description: 'Room IDs the user is joined to.' })
}, { additionalProperties: false })

/** user.read: the user lookup (joined_rooms alone answers 200 even for unknown users), then their rooms. */
export const userRead = defineAction({
  name: 'user.read',
  method: 'GET',
  url: '/v1/users/:userId',
  acting: false,
  operationId: 'getUser',
  summary: 'Look a user up for triage',
  description: 'A curated view of the user (display name, deactivated, admin, shadow-banned, creation time, joined rooms), with no personal data beyond that.',
  params: UserParams,
  result: UserView,
  problems: ['invalid_user_id', 'user_not_local', 'user_not_found'],

  async run (context, { userId }) {
    const user = userId as string
    const found = await context.facts.user(user)
    const rooms = joinedRooms(await context.synapse.joinedRooms(user))
    return {
      user_id: user,
      displayname: found.displayname,
      deactivated: found.deactivated,
      admin: found.admin,
      shadow_banned: found.shadowBanned,
      creation_ts: found.creationTs,
      rooms
    }
  }
})
