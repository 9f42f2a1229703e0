import { ACTIONS, type ActionName } from './actions.js'
import type { Condition, ConditionInput } from './condition.js'
import type { IdMatcher, RoomPatterns } from './patterns.js'
import type { ActionAccess, ApprovalRequirement, Decision, DimensionResult, Explanation, Policy, PolicyCaller, PolicyOptions, PolicyRequest, RoomFacts, RuleTrace, Unmatched } from './types.js'

/** A rule as the loader compiled it: every pattern precompiled, nothing left to parse per request. */
export interface CompiledRule {
  readonly name: string
  readonly effect: 'allow' | 'deny'
  readonly roles: ReadonlySet<string> | null
  readonly orgs: ReadonlySet<string> | null
  readonly actions: ReadonlySet<ActionName>
  readonly rooms: RoomPatterns | null
  readonly users: readonly IdMatcher[] | null
  readonly when: Condition | null
  /** Set on allow rules whose action runs only after this approval. */
  readonly approval: ApprovalRequirement | null
}

/** How far a rule got before it failed; the deepest stage over all candidate rules names what did not match. */
const STAGE = { room: 1, user: 2, condition: 3, matched: 4 } as const
type Stage = typeof STAGE[keyof typeof STAGE]
const UNMATCHED_OF_STAGE: readonly Unmatched[] = ['action', 'room', 'user', 'condition']

const ALLOWED_DETAIL = Object.fromEntries(ACTIONS.map((action) => [action, `the policy allows ${action}`])) as Record<ActionName, string>
/** Never names the approvers' roles or the rule: a refusal tells the caller what it needs, not who holds what. */
const APPROVAL_DETAIL = Object.fromEntries(ACTIONS.map((action) => [action, `the policy allows ${action} here only after an approval`])) as Record<ActionName, string>

function rolesMatch (roles: ReadonlySet<string> | null, caller: PolicyCaller): boolean {
  if (roles === null) return true
  for (const role of caller.roles) if (roles.has(role)) return true
  return false
}

function orgsMatch (orgs: ReadonlySet<string> | null, caller: PolicyCaller): boolean {
  return orgs === null || (caller.org !== null && orgs.has(caller.org))
}

function callerMatches (rule: CompiledRule, caller: PolicyCaller): boolean {
  return orgsMatch(rule.orgs, caller) && rolesMatch(rule.roles, caller)
}

function anyMatches (matchers: readonly IdMatcher[], id: string | null): boolean {
  if (id === null) return false
  for (const matcher of matchers) if (matcher.test(id)) return true
  return false
}

function roomMatches (patterns: RoomPatterns, room: RoomFacts): boolean {
  if (patterns.ids.has(room.id)) return true
  if (patterns.spaces.size > 0) for (const space of room.spaces) if (patterns.spaces.has(space)) return true
  if (patterns.aliases.length === 0) return false
  if (anyMatches(patterns.aliases, room.alias) || anyMatches(patterns.aliases, room.canonical_alias)) return true
  for (const alias of room.alt_aliases) if (anyMatches(patterns.aliases, alias)) return true
  return false
}

function conditionInput (request: PolicyRequest): ConditionInput {
  const { caller, room } = request
  return {
    caller: { sub: caller.sub, org: caller.org, roles: caller.roles, claims: caller.claims },
    action: request.action,
    room: room === null ? null : { id: room.id, alias: room.alias, canonical_alias: room.canonical_alias },
    user: request.user === null ? null : { id: request.user.id }
  }
}

/** The room in the caller's own terms. */
function roomNamed (room: RoomFacts | null): string {
  return room === null ? '(none)' : room.named ?? room.alias ?? room.id
}

function deniedDetail (action: ActionName, unmatched: Unmatched, request: PolicyRequest): string {
  switch (unmatched) {
    case 'action': return `the policy does not allow you to perform ${action}`
    case 'room': return `the policy does not allow ${action} in room ${roomNamed(request.room)}`
    case 'user': return `the policy does not allow ${action} on user ${request.user?.id ?? '(none)'}${request.room === null ? '' : ` in room ${roomNamed(request.room)}`}`
    case 'condition': return `the policy does not allow ${action} here: a condition on your token's claims is not met`
  }
}

/** What a matching deny rule took away, in the caller's terms: the most specific dimension it constrains. */
function denyDimension (rule: CompiledRule): Unmatched {
  if (rule.users !== null) return 'user'
  if (rule.rooms !== null) return 'room'
  if (rule.when !== null) return 'condition'
  return 'action'
}

export class CompiledPolicy implements Policy {
  readonly ruleCount: number
  readonly needsRoomAliases: boolean
  readonly spaceRefs: readonly string[]
  readonly #rules: readonly CompiledRule[]
  /** Per action, the rules that name it: deny rules (all are checked), allow rules in file order. */
  readonly #byAction: ReadonlyMap<ActionName, { denies: CompiledRule[], allows: CompiledRule[] }>
  readonly #onEvaluationError: PolicyOptions['onEvaluationError']
  readonly #reported = new Set<string>()

  constructor (readonly source: string, rules: readonly CompiledRule[], readonly implicit: boolean, options: PolicyOptions = {}, readonly warnings: readonly string[] = []) {
    this.#rules = rules
    this.ruleCount = rules.length
    this.needsRoomAliases = rules.some((rule) => rule.when !== null || (rule.rooms !== null && rule.rooms.aliases.length > 0))
    this.spaceRefs = [...new Set(rules.flatMap((rule) => rule.rooms === null ? [] : [...rule.rooms.spaces]))]
    this.#byAction = new Map(ACTIONS.map((action) => {
      const naming = rules.filter((rule) => rule.actions.has(action))
      return [action, { denies: naming.filter((rule) => rule.effect === 'deny'), allows: naming.filter((rule) => rule.effect === 'allow') }]
    }))
    this.#onEvaluationError = options.onEvaluationError
  }

  permitsAction (caller: PolicyCaller, action: ActionName): boolean {
    return this.#byAction.get(action)?.allows.some((rule) => callerMatches(rule, caller)) ?? false
  }

  allowedActions (caller: PolicyCaller): ActionName[] {
    return this.actionAccess(caller).map((access) => access.action)
  }

  actionAccess (caller: PolicyCaller): ActionAccess[] {
    return ACTIONS.flatMap((action): ActionAccess[] => {
      const { denies, allows } = this.#byAction.get(action) ?? { denies: [], allows: [] }
      const unconditionallyDenied = denies.some((rule) => rule.rooms === null && rule.users === null && rule.when === null && callerMatches(rule, caller))
      if (unconditionallyDenied) return []
      const giving = allows.filter((rule) => callerMatches(rule, caller))
      if (giving.length === 0) return []
      return [{ action, outright: giving.some((rule) => rule.approval === null), approval: giving.find((rule) => rule.approval !== null)?.approval ?? null }]
    })
  }

  decide (request: PolicyRequest): Decision {
    const rules = this.#byAction.get(request.action)
    if (rules === undefined) return this.#nothingMatched(request, 'action')
    const input: { value?: ConditionInput } = {}
    for (const rule of rules.denies) {
      if (callerMatches(rule, request.caller) && this.#targetStage(rule, request, input) === STAGE.matched) {
        return { allowed: false, rule: rule.name, effect: 'deny', detail: deniedDetail(request.action, denyDimension(rule), request) }
      }
    }
    let deepest = 0
    let approval: ApprovalRequirement | null = null
    for (const rule of rules.allows) {
      // Once an approval rule matched, only a rule allowing outright can change the decision.
      if ((approval !== null && rule.approval !== null) || !callerMatches(rule, request.caller)) continue
      const stage = this.#targetStage(rule, request, input)
      if (stage === STAGE.matched) {
        if (rule.approval === null) return { allowed: true, rule: rule.name, effect: 'allow', detail: ALLOWED_DETAIL[request.action] }
        approval = rule.approval
      }
      if (stage > deepest) deepest = stage
    }
    if (approval !== null) return { allowed: false, rule: approval.rule, effect: 'allow', approval, detail: APPROVAL_DETAIL[request.action] }
    return this.#nothingMatched(request, UNMATCHED_OF_STAGE[deepest] ?? 'action')
  }

  explain (request: PolicyRequest): Explanation {
    const input = conditionInput(request)
    const traces = this.#rules.map((rule): RuleTrace => {
      const trace: RuleTrace = {
        rule: rule.name,
        effect: rule.effect,
        roles: rule.roles === null ? 'any' : yesNo(rolesMatch(rule.roles, request.caller)),
        orgs: rule.orgs === null ? 'any' : yesNo(orgsMatch(rule.orgs, request.caller)),
        action: yesNo(rule.actions.has(request.action)),
        room: rule.rooms === null ? 'any' : request.room === null ? 'absent' : yesNo(roomMatches(rule.rooms, request.room)),
        user: rule.users === null ? 'any' : request.user === null ? 'absent' : yesNo(anyMatches(rule.users, request.user.id)),
        when: 'any',
        approval: rule.approval,
        matched: false
      }
      if (rule.when !== null) {
        const result = rule.when(input)
        trace.when = result.matched ? 'yes' : result.error === undefined ? 'no' : 'error'
        if (!result.matched && result.error !== undefined) trace.whenError = result.error.message
      }
      const whenCounts = matchesOrAny(trace.when) || (trace.when === 'error' && rule.effect === 'deny')
      trace.matched = whenCounts && [trace.roles, trace.orgs, trace.action, trace.room, trace.user].every(matchesOrAny)
      return trace
    })
    return { decision: this.decide(request), rules: traces }
  }

  /** Rooms, users, then `when`, for a rule that names the action and fits the caller. */
  #targetStage (rule: CompiledRule, request: PolicyRequest, input: { value?: ConditionInput }): Stage {
    if (rule.rooms !== null && (request.room === null || !roomMatches(rule.rooms, request.room))) return STAGE.room
    if (rule.users !== null && (request.user === null || !anyMatches(rule.users, request.user.id))) return STAGE.user
    if (rule.when !== null) {
      input.value ??= conditionInput(request)
      const result = rule.when(input.value)
      if (!result.matched) {
        if (result.error === undefined) return STAGE.condition
        this.#report(rule, result.error)
        // Fail closed: a deny rule whose condition cannot be evaluated (a missing claim, a claim of
        // the wrong type) matches, or a token could escape it by leaving the claim out.
        if (rule.effect === 'allow') return STAGE.condition
      }
    }
    return STAGE.matched
  }

  #report (rule: CompiledRule, error: Error): void {
    if (this.#onEvaluationError === undefined || this.#reported.has(rule.name)) return
    this.#reported.add(rule.name)
    this.#onEvaluationError(rule.name, error, rule.effect)
  }

  #nothingMatched (request: PolicyRequest, unmatched: Unmatched): Decision {
    return { allowed: false, rule: null, effect: 'deny', unmatched, detail: deniedDetail(request.action, unmatched, request) }
  }
}

function yesNo (value: boolean): DimensionResult {
  return value ? 'yes' : 'no'
}

function matchesOrAny (result: DimensionResult): boolean {
  return result === 'yes' || result === 'any'
}
