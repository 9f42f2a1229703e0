import type { TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { Caller } from '../auth/claims.js'
import type { Config } from '../config.js'
import type { ProblemCode } from '../errors.js'
import type { ActionName } from '../policy/index.js'
import type { CallName, SynapseClient, SynapseResponse } from '../synapse/client.js'
import type { ResolvedRoom, RoomDirectory } from '../synapse/rooms.js'

/**
 * One action: everything that differs between actions lives in its module (route, schemas,
 * policy name, the Synapse calls it makes and how their answers map to codes); everything they
 * share (limits, auth, policy, audit, the Synapse client) is the pipeline's (src/actions/pipeline.ts).
 */
export interface ActionDefinition<Params extends TSchema = TSchema, Body extends TSchema = TSchema> {
  name: ActionName
  method: 'GET' | 'POST' | 'DELETE'
  url: string
  /** Acting actions change Synapse: intent record first, `reason`, `?dry_run=true`, REQUIRE_REASON. */
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
  /** What the policy is asked about: the room as the caller named it, the target user. */
  target: (request: { params: unknown, body: unknown }) => { room?: string, userId?: string }
  /** Does the work; `room` is resolved when the action has one. */
  run: (context: ActionContext, target: ResolvedTarget) => Promise<unknown>
  /** A dry run: every check but the changing call. */
  dryRun?: (context: ActionContext, target: ResolvedTarget) => Promise<DryRunReport>
}

export interface ResolvedTarget { room: ResolvedRoom | undefined, userId: string | undefined, reason: string | undefined }

export interface DryRunCheck { name: string, ok: boolean, detail: string }
export interface DryRunReport { checks: DryRunCheck[], code?: ProblemCode }

/** What an action may use: tracked Synapse calls, the room directory, the admin account. */
export interface ActionContext {
  readonly request: FastifyRequest
  readonly caller: Caller
  readonly config: Config
  readonly synapse: SynapseClient
  readonly rooms: RoomDirectory
  /** A call that cannot change anything; tracked for the audit entry and metrics. */
  read: (name: CallName, send: (deadline: number) => Promise<SynapseResponse>) => Promise<SynapseResponse>
  /** The changing call: the intent record is written first (or nothing is sent: audit_unavailable). */
  act: (name: CallName, send: (deadline: number) => Promise<SynapseResponse>) => Promise<SynapseResponse>
  /** The gateway's own Synapse account (whoami, remembered once known). */
  adminUserId: () => Promise<string>
  /** Remembered for the audit entry and the answer. */
  setRoomId: (roomId: string) => void
}
