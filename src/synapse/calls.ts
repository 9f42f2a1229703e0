import { changingCall, readCall, type SynapseCall, type SynapseResponse } from './client.js'
import type { SelectionFactory } from './streamed.js'
import { SERVER_VERSION_PATH } from './version.js'

const enc = encodeURIComponent

/**
 * The Synapse calls several actions share, each declared once (name, method, path, whether it
 * changes anything). A call only one action makes may be declared in that action's module with
 * readCall / changingCall; both reach Synapse only through the tracked façade.
 */
export const SYNAPSE_CALLS = {
  lookupUser: (userId: string) => readCall('user_lookup', `/_synapse/admin/v2/users/${enc(userId)}`),
  resolveAlias: (alias: string) => readCall('directory', `/_matrix/client/v3/directory/room/${enc(alias)}`),
  whoami: () => readCall('whoami', '/_matrix/client/v3/account/whoami'),
  serverVersion: () => readCall('server_version', SERVER_VERSION_PATH),
  roomDetails: (roomId: string) => readCall('room_details', `/_synapse/admin/v1/rooms/${enc(roomId)}`),
  /**
   * Streamed: only the state events `select` keeps are held (stateSelection). `type` asks Synapse
   * for that event type only: versions from early 2025 on filter (`?type=`), 1.67 ignores it and
   * answers the whole state, which the selection then filters.
   */
  roomState: (roomId: string, select: SelectionFactory, type?: string) =>
    readCall('room_state', `/_synapse/admin/v1/rooms/${enc(roomId)}/state${type === undefined ? '' : `?type=${enc(type)}`}`, select),
  /** Streamed: only the page `select` keeps is held (membersSelection). */
  roomMembers: (roomId: string, select: SelectionFactory) => readCall('room_members', `/_synapse/admin/v1/rooms/${enc(roomId)}/members`, select),
  blockStatus: (roomId: string) => readCall('block_status', `/_synapse/admin/v1/rooms/${enc(roomId)}/block`),
  joinedRooms: (userId: string) => readCall('joined_rooms', `/_synapse/admin/v1/users/${enc(userId)}/joined_rooms`),
  /** By room ID; `servers` are the directory's hints for a remote room. */
  join: (roomId: string, userId: string, servers: string[] = []) =>
    changingCall('join', 'POST', `/_synapse/admin/v1/join/${enc(roomId)}${servers.length === 0 ? '' : `?${servers.map((server) => `server_name=${enc(server)}`).join('&')}`}`, { user_id: userId }),
  /** Synapse has no admin API to remove a member: a kick through the client API, as the admin account. */
  kick: (roomId: string, userId: string, reason: string | undefined) =>
    changingCall('kick', 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/kick`, reason === undefined ? { user_id: userId } : { user_id: userId, reason }),
  makeRoomAdmin: (roomId: string, userId: string) => changingCall('make_room_admin', 'POST', `/_synapse/admin/v1/rooms/${enc(roomId)}/make_room_admin`, { user_id: userId })
} satisfies Record<string, (...args: never[]) => SynapseCall>

type SharedCalls = typeof SYNAPSE_CALLS

/**
 * What an action gets instead of the client: the shared calls as methods that answer Synapse's
 * response, plus `send` for a call declared elsewhere. Every call is tracked (metrics, the audit's
 * `upstream`, the request's deadline); a changing one is sent only after its intent record.
 */
export type TrackedSynapse = { readonly [K in keyof SharedCalls]: (...args: Parameters<SharedCalls[K]>) => Promise<SynapseResponse> } & {
  send: (call: SynapseCall) => Promise<SynapseResponse>
}

/** Builds a façade over `send`: one method per shared call. */
export function trackedSynapse (send: (call: SynapseCall) => Promise<SynapseResponse>): TrackedSynapse {
  const facade: Record<string, unknown> = { send }
  for (const [name, declare] of Object.entries(SYNAPSE_CALLS)) {
    facade[name] = async (...args: unknown[]) => await send((declare as (...a: unknown[]) => SynapseCall)(...args))
  }
  return facade as TrackedSynapse
}
