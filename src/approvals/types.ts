import { createHash, randomBytes } from 'node:crypto'
import type { ApprovalRequirement } from '../policy/index.js'

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired'

/** Who requested or decided, as approvals compare callers: `iss` + `sub` (null when the token has no `iss`). */
export interface Person { sub: string, iss: string | null }

/** The requester as the policy saw it, kept so the held request runs as it was made (policy evaluated again). */
export interface RequesterSnapshot extends Person {
  org: string | null
  roles: string[]
  /** The verified token's payload, for the policy's `when` conditions. Never shown by the routes. */
  claims: Record<string, unknown>
}

/** What is needed to run the request again: never a secret (see heldBody). */
export interface HeldRequest {
  method: string
  /** Path and query as the caller sent them (e.g. /v1/users/%40alice%3Aexample.com/deactivate). */
  url: string
  /** The JSON body, without secrets; undefined when there was none. */
  body: unknown
}

export interface ApprovalDecision extends Person {
  decision: 'approve' | 'deny'
  reason: string | null
  /** The decider's roles when deciding: execution checks them against the policy in force then. */
  roles: string[]
  /** Milliseconds since the epoch. */
  at: number
}

/** How the held request ended when it ran (the action's own answer, minus its body). */
export interface ExecutionResult { status: number, code: string | null, at: number }

export interface Approval {
  id: string
  status: ApprovalStatus
  action: string
  /** The room and user as the requester named them. */
  /** As the requester named them; `room_id`: what the room resolved to when it was held (the only room it may run in). */
  target: { room: string | null, user_id: string | null, room_id?: string | null }
  reason: string | null
  requested_by: RequesterSnapshot
  required: ApprovalRequirement
  decisions: ApprovalDecision[]
  created_at: number
  expires_at: number
  /** Set once the approved request has run. */
  result: ExecutionResult | null
  held: HeldRequest
}

export interface NewApproval {
  action: string
  target: Approval['target']
  reason: string | null
  requested_by: RequesterSnapshot
  required: ApprovalRequirement
  held: HeldRequest
}

/** A caller deciding: who, with which roles (already checked against `required.roles` by the route). */
export interface Decider extends Person { roles: readonly string[] }

export type ApproveOutcome =
  /** Recorded; more approvals are needed. */
  | { kind: 'recorded', approval: Approval }
  /** This approval completed the count: the caller owns the single execution of the held request. */
  | { kind: 'execute', approval: Approval }
  | DecisionRefusal

export type DenyOutcome = { kind: 'denied', approval: Approval } | DecisionRefusal

export type DecisionRefusal =
  | { kind: 'not_found' }
  /** The requester tried to approve its own request. */
  | { kind: 'self_approval', approval: Approval }
  /** This caller already approved it (a repeat counts once). */
  | { kind: 'repeat', approval: Approval }
  /** Approved or denied already. */
  | { kind: 'decided', approval: Approval }
  /** Past its expiry; `expiredNow` when this call is the one that marked it expired (and so audits it). */
  | { kind: 'expired', approval: Approval, expiredNow: boolean }

export interface ListQuery {
  /** The caller: approvals it requested… */
  requester: Person
  /** …or may decide (one of these roles is among the approval's required roles, in the requester's org). */
  roles: readonly string[]
  org: string | null
  status?: ApprovalStatus | undefined
  /** At most this many (the route caps it). */
  limit: number
  /** The `next` of the previous page. */
  from?: string | undefined
}

export interface ApprovalPage { approvals: Approval[], next: string | undefined }

export interface ApprovalStoreLimits {
  /** How long an approval waits for its decisions (APPROVAL_TTL_S); an ended one stays visible as long again. */
  ttlS: number
  /** Approvals kept at most, pending and ended (APPROVAL_MAX_ENTRIES). */
  maxEntries: number
  /** Bytes of approvals kept at most (APPROVAL_MAX_BYTES), as their JSON. */
  maxBytes: number
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number
}

/**
 * Pending approvals and their decisions, shared by every replica (Redis) or kept by this one
 * (memory, lost on restart). Every transition is atomic: of concurrent approvals completing the
 * count, exactly one gets `execute`.
 */
export interface ApprovalStore {
  /** Rejects with ApprovalsFullError when the budget holds only pending approvals. */
  create: (input: NewApproval) => Promise<Approval>
  /** Status `expired` once past expires_at, even before anything marked it so. */
  get: (id: string) => Promise<Approval | undefined>
  list: (query: ListQuery) => Promise<ApprovalPage>
  approve: (id: string, decider: Decider, reason: string | null) => Promise<ApproveOutcome>
  deny: (id: string, decider: Decider, reason: string | null) => Promise<DenyOutcome>
  /** Records how the executed request ended (once; later calls change nothing). */
  complete: (id: string, result: Omit<ExecutionResult, 'at'>) => Promise<void>
  /** Marks pending approvals past their expiry as expired; returns those this call marked (at most `max`). */
  expireDue: (max?: number) => Promise<Approval[]>
  close: () => Promise<void>
}

/** Every pending approval is kept: a full store refuses new ones rather than dropping one someone waits on. */
export class ApprovalsFullError extends Error {
  override readonly name = 'ApprovalsFullError'
  constructor () {
    super('The approval store is full of pending approvals (APPROVAL_MAX_ENTRIES / APPROVAL_MAX_BYTES)')
  }
}

/** 128 random bits, URL-safe (22 characters). */
export function newApprovalId (): string {
  return randomBytes(16).toString('base64url')
}

export const APPROVAL_ID = /^[A-Za-z0-9_-]{22}$/

/**
 * One string per person: the token's `sub`. The issuer is left out on purpose: without
 * JWT_ISSUER a token may carry any `iss` (or none), and the same person with a second token from
 * another issuer must still not approve their own request nor count twice.
 */
export function personKey (person: Person): string {
  return JSON.stringify([person.sub])
}

export function samePerson (a: Person, b: Person): boolean {
  return a.sub === b.sub
}

/** A short fixed-length name for a person, for Redis keys. */
export function personDigest (person: Person): string {
  return createHash('sha256').update(personKey(person)).digest('hex')
}

/** Was the approval still pending at `now`? Otherwise it counts as expired from expires_at on. */
export function effectiveStatus (approval: Approval, now: number): ApprovalStatus {
  return approval.status === 'pending' && now >= approval.expires_at ? 'expired' : approval.status
}

/** When it stopped waiting for decisions; undefined while it still waits. */
export function endedAt (approval: Approval, now: number): number | undefined {
  const status = effectiveStatus(approval, now)
  if (status === 'pending') return undefined
  if (status === 'expired') return approval.expires_at
  return approval.decisions.at(-1)?.at ?? approval.created_at
}

/** An ended approval is kept (and shown) for the TTL after it ended, then it is gone. */
export function isGone (approval: Approval, now: number, ttlMs: number): boolean {
  const ended = endedAt(approval, now)
  return ended !== undefined && ended + ttlMs <= now
}

/** The approvals given so far (never the requester's: the store refuses those). */
export function approvers (approval: Approval): ApprovalDecision[] {
  return approval.decisions.filter((decision) => decision.decision === 'approve')
}

/**
 * Whether the approvals given satisfy a requirement: `count` distinct approvers, each holding (at
 * decision time) one of its roles. For the pipeline, which evaluates the policy again when the
 * held request runs and must not run it when the policy in force now asks for more.
 */
export function satisfies (requirement: Pick<ApprovalRequirement, 'roles' | 'count'>, approval: Approval): boolean {
  const counted = new Set<string>()
  for (const decision of approvers(approval)) {
    if (samePerson(decision, approval.requested_by)) continue
    if (decision.roles.some((role) => requirement.roles.includes(role))) counted.add(personKey(decision))
  }
  return counted.size >= requirement.count
}

/** Newest first; the cursor names the last approval of a page. */
export function compareNewestFirst (a: { created_at: number, id: string }, b: { created_at: number, id: string }): number {
  return b.created_at - a.created_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)
}

export function encodeCursor (approval: { created_at: number, id: string }): string {
  return Buffer.from(JSON.stringify([approval.created_at, approval.id])).toString('base64url')
}

/** undefined for a cursor this store did not make (the route answers 400). */
export function decodeCursor (cursor: string): { created_at: number, id: string } | undefined {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string') {
      return { created_at: value[0] as number, id: value[1] }
    }
  } catch {}
  return undefined
}

/** A caller as the approval routes see it: who, the org claim and the roles. */
export interface ApprovalCaller extends Person { org: string | null, roles: readonly string[] }

export function isVisibleTo (approval: Approval, caller: ApprovalCaller): boolean {
  return samePerson(approval.requested_by, caller) || mayDecide(approval, caller)
}

/** One of the required roles, in the requester's own org: four eyes never cross organisations. */
export function mayDecide (approval: Approval, caller: Pick<ApprovalCaller, 'org' | 'roles'>): boolean {
  return caller.org === approval.requested_by.org && caller.roles.some((role) => approval.required.roles.includes(role))
}
