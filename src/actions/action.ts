import type { TSchema } from '@sinclair/typebox'
import type { Caller } from '../auth/claims.js'
import type { Config } from '../config.js'
import type { ProblemCode } from '../errors.js'
import type { LookedUpUser } from '../synapse/answers.js'
import type { TrackedSynapse } from '../synapse/calls.js'
import type { ResolvedRoom, RoomDirectory, RoomSnapshot } from '../synapse/rooms.js'
import type { CheckStep } from './checks.js'

/**
 * One action: everything that differs between actions lives in its module (route, schemas,
 * policy name, preconditions, the Synapse calls it makes and how their answers map to codes);
 * everything they share (limits, auth, policy, audit, tracked Synapse calls, dry runs, batch,
 * OpenAPI, metrics) is the pipeline's. Listed once, in src/actions/catalog.ts.
 */
export interface ActionDefinition<Params extends TSchema = TSchema, Body extends TSchema = TSchema, Name extends string = string> {
  /** The policy's name for it, also the metric label and the batch item's `action`. */
  name: Name
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /**
   * The route. What the action acts on follows from it: `:roomIdOrAlias` names the room,
   * `:userId` (or a body `user_id`) the target user.
   */
  url: string
  /** Acting actions change Synapse: intent record first, `reason`, `?dry_run=true`, REQUIRE_REASON, batch items. */
  acting: boolean
  operationId: string
  summary: string
  description: string
  params: Params
  body?: Body
  /** The 200 answer's schema (a dry run's answer is the pipeline's). */
  result: TSchema
  /** Problems this action can answer besides the pipeline's own. */
  problems: ProblemCode[]
  /**
   * Fields of the 200 answer that are given once (a generated password): never stored with the
   * Idempotency-Key's answer, so a replay answers without them.
   */
  answeredOnce?: string[]
  /**
   * Preconditions, in order: the real call runs the gateway's own (stopping at the first failure),
   * a dry run shows them all with the ones Synapse checks itself (src/actions/checks.ts).
   */
  checks?: CheckStep[]
  /** Does the work once the checks passed; `room` is resolved when the action has one. */
  run: (context: ActionContext, target: ResolvedTarget) => Promise<unknown>
}

export interface ResolvedTarget { room: ResolvedRoom | undefined, userId: string | undefined, reason: string | undefined }

/** The room and user as the caller named them (unchecked), read from the request as the route declares. */
export interface NamedTarget { room: string | undefined, userId: string | undefined }

/** What an action acts on, from its route and body: for the policy's targets and for batch items. */
export function actsOn (action: Pick<ActionDefinition, 'url' | 'body'>): { room: boolean, user: boolean } {
  const bodyFields = action.body as { properties?: Record<string, unknown>, anyOf?: Array<{ properties?: Record<string, unknown> }> } | undefined
  const bodyHasUser = bodyFields?.properties?.user_id !== undefined || bodyFields?.anyOf?.some((schema) => schema.properties?.user_id !== undefined) === true
  return { room: action.url.includes(':roomIdOrAlias'), user: action.url.includes(':userId') || bodyHasUser }
}

/** The room and user the request names: `:roomIdOrAlias`, then `:userId` or the body's `user_id`. */
export function namedTarget (params: unknown, body: unknown): NamedTarget {
  const { roomIdOrAlias, userId } = (params ?? {}) as { roomIdOrAlias?: unknown, userId?: unknown }
  const bodyUser = (typeof body === 'object' && body !== null ? (body as { user_id?: unknown }).user_id : undefined)
  const text = (value: unknown) => typeof value === 'string' ? value : undefined
  return { room: text(roomIdOrAlias), userId: text(userId) ?? text(bodyUser) }
}

/** What an action may use: tracked Synapse calls, the room directory, the admin account. */
export interface ActionContext {
  readonly caller: Caller
  /** The route's query string, parsed (reads that page take theirs from it; acting actions have only dry_run). */
  readonly query: unknown
  /** The request's body as validated by the action's schema (null or undefined when none was sent). */
  readonly body: unknown
  readonly config: Config
  /** Synapse, tracked: a changing call is sent only after the intent record is on disk. */
  readonly synapse: TrackedSynapse
  readonly rooms: RoomDirectory
  /** The gateway's own Synapse account (whoami, remembered once known). */
  adminUserId: () => Promise<string>
  /** Synapse's version (server_version, asked again after a minute). */
  synapseVersion: () => Promise<string>
  /** Facts the checks share within one request (the user lookup, the room's state), fetched once. */
  readonly facts: RequestFacts
}

/** Per request, memoised: checks and `run` read the same answers instead of asking twice. */
export interface RequestFacts {
  user: (userId: string) => Promise<LookedUpUser>
  /**
   * The room's state as the checks read it: the power levels, the join rule, and the memberships of
   * the target user and the gateway's account (`powerUsers`: also of the users the power levels name).
   */
  room: (roomId: string, scope?: { powerUsers?: boolean }) => Promise<RoomSnapshot>
}

/** Declares an action, keeping its literal name (the catalog's names become the ActionName type). */
export function defineAction<const Name extends string, Params extends TSchema, Body extends TSchema> (action: ActionDefinition<Params, Body, Name>): ActionDefinition<Params, Body, Name> {
  return action
}
