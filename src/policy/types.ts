import type { ActionName } from './actions.js'

export interface PolicyCaller { sub: string, org: string | null, roles: readonly string[], claims: Record<string, unknown> }

export interface RoomFacts {
  /** The resolved room ID. */
  id: string
  /** The alias the caller named (already resolved to `id`), or null. */
  alias: string | null
  /** As Synapse reports it (m.room.canonical_alias). */
  canonical_alias: string | null
  /** From m.room.canonical_alias alt_aliases. */
  alt_aliases: readonly string[]
  /** The `space:` references (exactly as in Policy.spaceRefs) whose space has this room as a child. */
  spaces: readonly string[]
  /**
   * The room as the caller wrote it, for the denial's detail only (never matched: an alias the
   * room does not publish is no fact of the room). Defaults to `alias`, then `id`.
   */
  named?: string
}

export interface PolicyRequest { caller: PolicyCaller, action: ActionName, room: RoomFacts | null, user: { id: string } | null }

/** What no allow rule for this caller's roles and orgs matched, deepest first reached: action, then room, user, condition. */
export type Unmatched = 'action' | 'room' | 'user' | 'condition'

export interface Decision {
  allowed: boolean
  /** The deny rule that matched, or the allow rule that decided; null when nothing matched. */
  rule: string | null
  effect: 'allow' | 'deny'
  unmatched?: Unmatched
  /** For the caller's 403 policy_denied: names what did not match, never rules or other callers' permissions. */
  detail: string
}

/** How one dimension of one rule fared: `any` when the rule does not constrain it, `absent` when the request lacks it. */
export type DimensionResult = 'yes' | 'no' | 'any' | 'absent'

export interface RuleTrace {
  rule: string
  effect: 'allow' | 'deny'
  roles: DimensionResult
  orgs: DimensionResult
  action: DimensionResult
  room: DimensionResult
  user: DimensionResult
  when: DimensionResult
  /** Why `when` failed to evaluate, when it did. */
  whenError?: string
  matched: boolean
}

export interface Explanation { decision: Decision, rules: RuleTrace[] }

export interface PolicyOptions {
  /**
   * Called when a rule's `when` fails to evaluate or gives no bool (the rule then does not
   * match): once per rule for the life of this Policy, so a broken rule cannot flood the log.
   */
  onEvaluationError?: (rule: string, error: Error) => void
}

export interface Policy {
  /** The file path, or "implicit (JOIN_ROLES)". */
  readonly source: string
  readonly implicit: boolean
  readonly ruleCount: number
  /** Some rule has an alias pattern or a `when`: the pipeline must fetch the canonical and alt aliases. */
  readonly needsRoomAliases: boolean
  /** Every distinct `space:` pattern; the pipeline resolves them and fills RoomFacts.spaces. */
  readonly spaceRefs: readonly string[]
  /** Could any allow rule let this caller do this action somewhere (roles, orgs and action only)? */
  permitsAction: (caller: PolicyCaller, action: ActionName) => boolean
  decide: (request: PolicyRequest) => Decision
  /** For GET /v1/me: the actions some allow rule gives this caller (ignoring rooms, users and `when`), minus those an unconditional deny takes away. */
  allowedActions: (caller: PolicyCaller) => ActionName[]
  /** The decision and how every rule fared, for `policy explain`. */
  explain: (request: PolicyRequest) => Explanation
}
