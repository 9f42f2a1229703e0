import { roomAdopt } from './room-adopt.js'
import { roomJoin } from './room-join.js'
import { roomMembersRead } from './room-members-read.js'
import { roomPromote } from './room-promote.js'
import { roomRemove } from './room-remove.js'
import { userRead } from './user-read.js'

/**
 * Every action the gateway offers, one module each: the single list. Policy names, metric
 * labels, /v1/me, batch items, routes, OpenAPI and docs/actions.md all derive from it.
 */
export const CATALOG = [roomJoin, roomRemove, roomMembersRead, roomPromote, userRead, roomAdopt] as const

export type CatalogAction = typeof CATALOG[number]
export type ActionName = CatalogAction['name']
export const ACTION_NAMES: readonly ActionName[] = CATALOG.map((action) => action.name)
