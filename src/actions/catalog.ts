import { roomAdopt } from './room-adopt.js'
import { roomJoin } from './room-join.js'
import { roomMembersRead } from './room-members-read.js'
import { roomPromote } from './room-promote.js'
import { roomRemove } from './room-remove.js'
import { userDeactivate } from './user-deactivate.js'
import { userLock } from './user-lock.js'
import { userLogout } from './user-logout.js'
import { userPasswordReset } from './user-password-reset.js'
import { userRead } from './user-read.js'
import { userSuspend } from './user-suspend.js'
import { userUnlock } from './user-unlock.js'
import { userUnsuspend } from './user-unsuspend.js'

/**
 * Every action the gateway offers, one module each: the single list. Policy names, metric
 * labels, /v1/me, batch items, routes, OpenAPI and docs/actions.md all derive from it.
 */
export const CATALOG = [
  roomJoin, roomRemove, roomMembersRead, roomPromote, userRead, roomAdopt,
  userLock, userUnlock, userSuspend, userUnsuspend, userLogout, userPasswordReset, userDeactivate
] as const

export type CatalogAction = typeof CATALOG[number]
export type ActionName = CatalogAction['name']
export const ACTION_NAMES: readonly ActionName[] = CATALOG.map((action) => action.name)
