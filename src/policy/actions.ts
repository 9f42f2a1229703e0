import { actsOn } from '../actions/action.js'
import { ACTION_NAMES, CATALOG, type ActionName } from '../actions/catalog.js'

/** The actions the gateway performs, as the policy, the audit, metrics and /v1/me name them: the catalog's. */
export const ACTIONS = ACTION_NAMES
export type { ActionName }

/** What each action acts on: a room, a target user, or both. A rule constraining what an action lacks never matches it. */
export const ACTION_TARGETS: Readonly<Record<ActionName, { room: boolean, user: boolean }>> =
  Object.fromEntries(CATALOG.map((action) => [action.name, actsOn(action)])) as Record<ActionName, { room: boolean, user: boolean }>

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
