/**
 * The bench's big-rooms phase (issue 18): what it sends. The 5,000-member room of
 * dev/homeserver/big-rooms.ts beside a small public room, each read, joined (policy-checked) and
 * dry-run. Repeat joins answer 200: the user is already in the room.
 */
import { BIG_ROOMS } from '../dev/homeserver/big-rooms.js'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'

/** Alias patterns, a space and `when` decide; bench tokens carry role helpdesk, department support. */
export const BIG_ROOMS_POLICY = `rules:
  - name: company-rooms
    roles: [helpdesk]
    actions: [room.join, room.members.read]
    rooms: ["#company-*:test.local", "#public-*:test.local", "space:#support:test.local"]
    when: 'caller.claims.department == "support"'
`

const user = '@alice:test.local'

/** Callers at once: few, so what is measured is each request's cost, not a queue. */
export const BIG_ROOM_CONCURRENCY = 4
const rooms = [['5,000 members', BIG_ROOMS.members], ['small room', RECORDED_ROOMS.publicTest]] as const
const path = (room: string) => `/v1/rooms/${encodeURIComponent(room)}/members`

export const BIG_ROOM_LOADS = rooms.flatMap(([label, room]) => [
  { name: `members read (1,000 a page), ${label}`, method: 'GET' as const, path: path(room) },
  { name: `policy-checked join, ${label}`, method: 'POST' as const, path: path(room), body: JSON.stringify({ user_id: user }) },
  { name: `join dry run, ${label}`, method: 'POST' as const, path: `${path(room)}?dry_run=true`, body: JSON.stringify({ user_id: user }) }
])
