import { problem } from '../errors.js'
import { resolvedAlias, roomState, type StateEvent } from './answers.js'
import type { TrackedSynapse } from './calls.js'
import { stateSelection } from './streamed.js'

export interface ResolvedRoom {
  id: string
  /** The alias the caller named, once it resolved to `id`; null when they named the ID. */
  alias: string | null
  /** Servers the directory named, for joining a remote room by ID. */
  servers: string[]
}

/** A small map with expiry and a size bound: the oldest entries go first. No timer per entry. */
class ExpiringCache<V> {
  private readonly entries = new Map<string, { value: V, expires: number }>()
  constructor (private readonly ttlMs: number, private readonly maxEntries: number) {}

  get (key: string): V | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expires <= Date.now()) {
      this.entries.delete(key)
      return undefined
    }
    return entry.value
  }

  set (key: string, value: V): void {
    this.entries.delete(key)
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string)
    this.entries.set(key, { value, expires: Date.now() + this.ttlMs })
  }
}

export interface PublishedAliases { canonical: string | null, alt: string[] }

export interface RoomDirectoryOptions {
  /** How long room facts used for decisions are believed (the contract allows 60 s at most). */
  ttlMs?: number
  maxEntries?: number
}

/**
 * Resolves what callers name to room IDs, and remembers the room facts the policy decides on
 * (canonical alias, the children of spaces) for at most a minute, bounded in memory.
 */
export function createRoomDirectory (options: RoomDirectoryOptions = {}) {
  const ttlMs = Math.min(options.ttlMs ?? 60_000, 60_000)
  const maxEntries = options.maxEntries ?? 10_000
  const aliases = new ExpiringCache<{ roomId: string, servers: string[] }>(ttlMs, maxEntries)
  const published = new ExpiringCache<PublishedAliases>(ttlMs, maxEntries)
  const children = new ExpiringCache<Set<string>>(ttlMs, Math.min(maxEntries, 1000))

  async function resolve (named: string, synapse: TrackedSynapse): Promise<ResolvedRoom> {
    if (named.startsWith('!')) return { id: named, alias: null, servers: [] }
    let entry = aliases.get(named)
    if (entry === undefined) {
      entry = resolvedAlias(await synapse.resolveAlias(named))
      aliases.set(named, entry)
    }
    return { id: entry.roomId, alias: named, servers: entry.servers }
  }

  /**
   * The aliases the room publishes (m.room.canonical_alias: `alias` and `alt_aliases`, which only
   * the room's own admins can set), from one streamed read of its state that keeps that one event;
   * none for a room unknown to Synapse.
   */
  async function publishedAliases (roomId: string, synapse: TrackedSynapse): Promise<PublishedAliases> {
    const known = published.get(roomId)
    if (known !== undefined) return known
    const [event] = roomState(await synapse.roomState(roomId, CANONICAL_ALIAS, 'm.room.canonical_alias')) ?? []
    const content = event?.content ?? {}
    const facts = {
      canonical: typeof content.alias === 'string' ? content.alias : null,
      alt: Array.isArray(content.alt_aliases) ? content.alt_aliases.filter((alias): alias is string => typeof alias === 'string').slice(0, 64) : []
    }
    published.set(roomId, facts)
    return facts
  }

  /** Room IDs that the space names as children (m.space.child with a non-empty `via`). */
  async function spaceChildren (space: string, synapse: TrackedSynapse): Promise<Set<string>> {
    const known = children.get(space)
    if (known !== undefined) return known
    let found = new Set<string>()
    try {
      const spaceId = (await resolve(space, synapse)).id
      found = childrenIn(roomState(await synapse.roomState(spaceId, SPACE_CHILDREN, 'm.space.child')))
    } catch (error) {
      // An unknown space has no children; any other failure is the request's.
      if (!(error instanceof Error && 'problem' in error && error.problem === 'room_not_found')) throw error
    }
    children.set(space, found)
    return found
  }

  return { resolve, publishedAliases, spaceChildren }
}

const CANONICAL_ALIAS = stateSelection((event) => event.type === 'm.room.canonical_alias' && event.state_key === '')
// A space's children are the decision itself: each is kept (a room ID and its `via`), nothing else.
const SPACE_CHILDREN = stateSelection((event) => event.type === 'm.space.child')

function childrenIn (state: StateEvent[] | undefined): Set<string> {
  const found = new Set<string>()
  for (const event of state ?? []) {
    if (event.type === 'm.space.child' && Array.isArray(event.content.via) && event.content.via.length > 0) found.add(event.state_key)
  }
  return found
}

export type RoomDirectory = ReturnType<typeof createRoomDirectory>

/** What one room looks like now, from its state: memberships, power levels, join rule. */
export interface RoomSnapshot {
  joinRule: string
  membership: (userId: string) => string | undefined
  powerLevel: (userId: string) => number
  levels: { invite: number, kick: number, powerLevels: number }
  /** Joined local members listed in the power levels' `users`, highest first (make_room_admin's choice of sender). */
  joinedPowerUsers: (serverName: string) => Array<{ userId: string, level: number }>
}

const numberOr = (value: unknown, fallback: number) => typeof value === 'number' && Number.isFinite(value) ? value : fallback

/**
 * Room version 12 (current Synapse's default; MSC4289, not in 1.67) gives the room's creators unlimited
 * power; they are never listed in the power levels' `users`.
 */
function creatorsOf (create: StateEvent | undefined): string[] {
  if (create === undefined) return []
  const version = String(create.content.room_version ?? '1')
  const privileged = version === 'org.matrix.hydra.11' || (/^\d+$/.test(version) && Number(version) >= 12)
  if (!privileged) return []
  const additional = Array.isArray(create.content.additional_creators) ? create.content.additional_creators.filter((id): id is string => typeof id === 'string') : []
  const sender = (create as { sender?: unknown }).sender
  return [...(typeof sender === 'string' ? [sender] : []), ...additional]
}

export function snapshotOf (state: StateEvent[]): RoomSnapshot {
  const members = new Map<string, string>()
  let powerLevels: Record<string, unknown> = {}
  let joinRule = 'invite'
  let create: StateEvent | undefined
  for (const event of state) {
    if (event.type === 'm.room.member' && typeof event.content.membership === 'string') members.set(event.state_key, event.content.membership)
    else if (event.type === 'm.room.create' && event.state_key === '') create = event
    else if (event.type === 'm.room.power_levels' && event.state_key === '') powerLevels = event.content
    else if (event.type === 'm.room.join_rules' && typeof event.content.join_rule === 'string') joinRule = event.content.join_rule
  }
  const users = powerUsersOf(powerLevels)
  const events = (typeof powerLevels.events === 'object' && powerLevels.events !== null ? powerLevels.events : {}) as Record<string, unknown>
  const usersDefault = numberOr(powerLevels.users_default, 0)
  const stateDefault = numberOr(powerLevels.state_default, 50)
  const creators = creatorsOf(create)
  const powerLevel = (userId: string) => creators.includes(userId)
    ? Number.POSITIVE_INFINITY
    : Object.hasOwn(users, userId) ? numberOr(users[userId], usersDefault) : usersDefault
  return {
    joinRule,
    membership: (userId) => members.get(userId),
    powerLevel,
    levels: {
      invite: numberOr(powerLevels.invite, 0),
      kick: numberOr(powerLevels.kick, 50),
      powerLevels: numberOr(events['m.room.power_levels'], stateDefault)
    },
    joinedPowerUsers: (serverName) => [...new Set([...creators, ...Object.keys(users)])]
      .filter((userId) => userId.endsWith(`:${serverName}`) && members.get(userId) === 'join')
      .map((userId) => ({ userId, level: powerLevel(userId) }))
      .sort((a, b) => b.level - a.level)
  }
}

export interface SnapshotScope {
  /** Whose membership the decision reads; only these member events are kept. */
  users: string[]
  /** Also the memberships of the users listed in the power levels (for joinedPowerUsers). */
  powerUsers?: boolean
}

// m.room.create names the creators, who hold unlimited power in room version 12.
const ROOM_RULES = new Set(['m.room.power_levels', 'm.room.join_rules', 'm.room.create'])

/**
 * The room's current state as far as a decision needs it, or room_not_found. The state is read
 * streamed and only the create event, the power levels, the join rule and the member events of `scope`
 * are kept, so a room of any size costs the same memory. The users named in the power levels (and a
 * version 12 room's creators) are known only once that event has gone by: when member events came
 * before it, a second streamed read keeps theirs.
 */
export async function snapshot (synapse: TrackedSynapse, roomId: string, scope: SnapshotScope): Promise<RoomSnapshot> {
  const wanted = new Set(scope.users)
  // The events that name the powerful users: the power levels (`users`) and the create event (creators).
  const naming = new Set(['m.room.power_levels', 'm.room.create'])
  let membersSeen = false
  let namedAfterMembers = false
  const first = stateSelection((event) => {
    if (ROOM_RULES.has(event.type) && event.state_key === '') {
      if (naming.delete(event.type) && scope.powerUsers === true) {
        const named = event.type === 'm.room.create' ? creatorsOf(event) : Object.keys(powerUsersOf(event.content))
        for (const userId of named) wanted.add(userId)
        if (membersSeen && named.length > 0) namedAfterMembers = true
      }
      return true
    }
    if (event.type !== 'm.room.member') return false
    membersSeen = true
    return wanted.has(event.state_key)
  })
  const state = roomState(await synapse.roomState(roomId, first))
  if (state === undefined) throw problem('room_not_found', 'Synapse does not know this room: check the room ID or alias.')
  if (namedAfterMembers) {
    const known = new Set(state.filter((event) => event.type === 'm.room.member').map((event) => event.state_key))
    const again = stateSelection((event) => event.type === 'm.room.member' && wanted.has(event.state_key) && !known.has(event.state_key))
    state.push(...(roomState(await synapse.roomState(roomId, again)) ?? []))
  }
  return snapshotOf(state)
}

function powerUsersOf (content: Record<string, unknown>): Record<string, unknown> {
  return typeof content.users === 'object' && content.users !== null ? content.users as Record<string, unknown> : {}
}
