/** The actions the gateway performs, as the policy, the audit, metrics and /v1/me name them. */
export const ACTIONS = ['room.join', 'room.remove', 'room.members.read', 'room.promote', 'user.read'] as const
export type ActionName = typeof ACTIONS[number]

/** What each action acts on: a room, a target user, or both. A rule constraining what an action lacks never matches it. */
export const ACTION_TARGETS: Readonly<Record<ActionName, { room: boolean, user: boolean }>> = {
  'room.join': { room: true, user: true },
  'room.remove': { room: true, user: true },
  'room.members.read': { room: true, user: false },
  'room.promote': { room: true, user: true },
  'user.read': { room: false, user: true }
}

export function isAction (value: string): value is ActionName {
  return (ACTIONS as readonly string[]).includes(value)
}

/**
 * The actions an `actions:` entry stands for: an action name, `*` (all), or a prefix
 * pattern such as `room.*`. An empty list means the entry names no action.
 */
export function expandActionPattern (pattern: string): ActionName[] {
  if (pattern === '*') return [...ACTIONS]
  if (pattern.endsWith('.*')) {
    const prefix = pattern.slice(0, -1)
    return ACTIONS.filter((action) => action.startsWith(prefix))
  }
  return isAction(pattern) ? [pattern] : []
}
