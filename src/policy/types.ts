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

/** What an allow rule's `approval:` asks for before its action may run. */
export interface ApprovalRequirement {
  /** The allow rule that asks for it. */
  rule: string
  /** An approver holds at least one of these roles. */
  roles: readonly string[]
  /** How many distinct approvers (never the requester) must approve. */
  count: number
}

export interface Decision {
  /**
   * The request may run now: no deny rule matched and an allow rule without `approval` did.
   * False when it may run only after an approval (then `approval` is set), so a caller that
   * knows nothing of approvals refuses it.
   */
  allowed: boolean
  /** The deny rule that matched, or the allow rule that decided; null when nothing matched. */
  rule: string | null
  effect: 'allow' | 'deny'
  unmatched?: Unmatched
  /**
   * Set when no deny rule and no allow rule without `approval` matched, but an allow rule with
   * one did: the first such rule in file order decides (and is `rule`, with effect "allow").
   */
  approval?: ApprovalRequirement
  /** For the caller's 403 policy_denied: names what did not match, never rules or other callers' permissions. */
  detail: string
}

/** For GET /v1/me: an action some allow rule gives a caller (rooms, users and `when` aside). */
export interface ActionAccess {
  action: ActionName
  /** Some allow rule without `approval` gives it. */
  outright: boolean
  /** The first allow rule with `approval` that gives it (file order), or null. Both may be set: rooms and users are ignored here. */
  approval: ApprovalRequirement | null
}

/**
 * How one dimension of one rule fared: `any` when the rule does not constrain it, `absent` when
 * the request lacks it, `error` when its `when` failed to evaluate (a deny rule then matches, an
 * allow rule does not).
 */
export type DimensionResult = 'yes' | 'no' | 'any' | 'absent' | 'error'

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
  /** What the rule asks for before its action may run, when it has `approval:`. */
  approval: ApprovalRequirement | null
  matched: boolean
}

export interface Explanation { decision: Decision, rules: RuleTrace[] }

export interface PolicyOptions {
  /**
   * Called when a rule's `when` fails to evaluate or gives no bool: once per rule for the life
   * of this Policy, so a broken rule cannot flood the log. Deny rules fail closed (`effect`
   * "deny": the rule then matches); an allow rule then does not match.
   */
  onEvaluationError?: (rule: string, error: Error, effect: 'allow' | 'deny') => void
}

export interface Policy {
  /** The file path, or "implicit (JOIN_ROLES)". */
  readonly source: string
  /** One line each (file, rule, problem) for what loads but is likely a mistake, such as a claim read without has(); for `policy check`. */
  readonly warnings: readonly string[]
  readonly implicit: boolean
  readonly ruleCount: number
  /** Some rule has an alias pattern or a `when`: the pipeline must fetch the canonical and alt aliases. */
  readonly needsRoomAliases: boolean
  /** Every distinct `space:` pattern; the pipeline resolves them and fills RoomFacts.spaces. */
  readonly spaceRefs: readonly string[]
  /** Could any allow rule (with or without `approval`) let this caller do this action somewhere (roles, orgs and action only)? */
  permitsAction: (caller: PolicyCaller, action: ActionName) => boolean
  decide: (request: PolicyRequest) => Decision
  /** For GET /v1/me: the actions some allow rule (with or without `approval`) gives this caller (ignoring rooms, users and `when`), minus those an unconditional deny takes away. */
  allowedActions: (caller: PolicyCaller) => ActionName[]
  /** The same actions as allowedActions, each telling whether it is given outright and which approval an approval rule asks for. */
  actionAccess: (caller: PolicyCaller) => ActionAccess[]
  /** The decision and how every rule fared, for `policy explain`. */
  explain: (request: PolicyRequest) => Explanation
}
