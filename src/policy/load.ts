import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value'
import { LineCounter, parseDocument } from 'yaml'
import { ACTION_TARGETS, ACTIONS, expandActionPattern, isAction, type ActionName } from './actions.js'
import { claimExpression, claimGuard } from './claim-guards.js'
import { compileCondition, ConditionError, type CompiledCondition } from './condition.js'
import { CompiledPolicy, type CompiledRule } from './engine.js'
import { addRoomPattern, compileUserPattern, PatternError, type IdMatcher } from './patterns.js'
import type { Policy, PolicyOptions } from './types.js'

/** A policy file that cannot be used. The message is one line: the file, the rule (name and index) and the problem. */
export class PolicyError extends Error {
  override name = 'PolicyError'
}

const NonEmptyStrings = Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })

export const ApprovalSchema = Type.Object({
  roles: NonEmptyStrings,
  count: Type.Integer({ minimum: 1 })
}, { additionalProperties: false })

export const RuleSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  effect: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny')])),
  roles: Type.Optional(NonEmptyStrings),
  orgs: Type.Optional(NonEmptyStrings),
  actions: NonEmptyStrings,
  rooms: Type.Optional(NonEmptyStrings),
  users: Type.Optional(NonEmptyStrings),
  when: Type.Optional(Type.String({ minLength: 1 })),
  approval: Type.Optional(ApprovalSchema)
}, { additionalProperties: false })

export const PolicyFileSchema = Type.Object({
  rules: Type.Array(RuleSchema, { minItems: 1 })
}, { additionalProperties: false })

export type PolicyFile = Static<typeof PolicyFileSchema>
type RuleSource = Static<typeof RuleSchema>

const RULE_FIELDS = Object.keys(RuleSchema.properties)
const FILE_FIELDS = Object.keys(PolicyFileSchema.properties)
const APPROVAL_FIELDS = Object.keys(ApprovalSchema.properties)

/** `rule "helpdesk" (rules[2])`, or `rules[2]` while the rule has no usable name. */
function ruleLabel (rule: unknown, index: number): string {
  const name = typeof rule === 'object' && rule !== null ? (rule as { name?: unknown }).name : undefined
  return typeof name === 'string' && name !== '' ? `rule ${JSON.stringify(name)} (rules[${index}])` : `rules[${index}]`
}

/** `/rules/2/actions/1` → `actions[1]` */
function fieldOf (segments: string[]): string {
  return segments.map((segment, i) => /^\d+$/.test(segment) ? `[${segment}]` : `${i === 0 ? '' : '.'}${segment}`).join('')
}

function schemaProblem (error: ValueError): string {
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties: return 'is not a known field'
    case ValueErrorType.ObjectRequiredProperty: return 'is missing'
    case ValueErrorType.Object: return 'must be a map'
    case ValueErrorType.Array: return 'must be a list'
    case ValueErrorType.ArrayMinItems: return 'must not be an empty list'
    case ValueErrorType.String: return 'must be a string'
    case ValueErrorType.StringMinLength: return 'must not be empty'
    case ValueErrorType.Union: return 'must be "allow" or "deny"'
    case ValueErrorType.Integer: return 'must be a whole number'
    case ValueErrorType.IntegerMinimum: return `must be at least ${String(error.schema.minimum)}`
    default: return error.message
  }
}

/** Required-property errors come with a type error for the same path; unknown fields first, they explain the rest. */
function firstSchemaError (value: unknown): ValueError | undefined {
  const errors = [...Value.Errors(PolicyFileSchema, value)]
  return errors.find((error) => error.type === ValueErrorType.ObjectAdditionalProperties) ?? errors[0]
}

function describeSchemaError (source: string, value: unknown, error: ValueError): string {
  const segments = error.path.split('/').slice(1)
  if (segments.length === 0) return `${source}: the file must be a map with a "rules:" list`
  const known = (fields: string[]): string => error.type === ValueErrorType.ObjectAdditionalProperties ? ` (known: ${fields.join(', ')})` : ''
  if (segments[0] !== 'rules' || segments.length === 1) {
    return `${source}: ${JSON.stringify(segments[0])} ${schemaProblem(error)}${known(FILE_FIELDS)}`
  }
  const index = Number(segments[1])
  const rule = (value as { rules: unknown[] }).rules[index]
  const field = segments.slice(2)
  if (field.length === 0) return `${source}: ${ruleLabel(rule, index)}: ${schemaProblem(error)}`
  if (error.type !== ValueErrorType.ObjectAdditionalProperties) return `${source}: ${ruleLabel(rule, index)}: ${fieldOf(field)} ${schemaProblem(error)}`
  // An unknown field of the rule, or of its approval map.
  const [parent, unknown] = field.length === 1 ? [null, field[0]] : [fieldOf(field.slice(0, -1)), field.at(-1)]
  const shown = parent === null ? JSON.stringify(unknown) : `${parent}.${JSON.stringify(unknown)}`
  return `${source}: ${ruleLabel(rule, index)}: ${shown} ${schemaProblem(error)}${known(parent === null ? RULE_FIELDS : APPROVAL_FIELDS)}`
}

function parseYaml (text: string, source: string): unknown {
  const lines = new LineCounter()
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  const [error] = document.errors
  if (error !== undefined) {
    const at = lines.linePos(error.pos[0])
    const where = `line ${at.line}, column ${at.col}: `
    throw new PolicyError(`${source}: ${where}not valid YAML: ${error.message.split('\n')[0] ?? ''}`)
  }
  return document.toJS({ maxAliasCount: 100 })
}

/** A compiled rule and what `policy check` warns about it (problems without the file and rule). */
function compileRule (rule: RuleSource, fail: (problem: string) => never): CompiledRule & { warnings: string[] } {
  const actions = new Set<ActionName>()
  rule.actions.forEach((pattern, i) => {
    const expanded = expandActionPattern(pattern)
    if (expanded.length === 0) fail(`actions[${i}] ${JSON.stringify(pattern)} is not an action (known: ${ACTIONS.join(', ')}, "*", or a prefix such as "room.*")`)
    for (const action of expanded) actions.add(action)
  })

  let rooms: CompiledRule['rooms'] = null
  if (rule.rooms !== undefined) {
    const into = { ids: new Set<string>(), aliases: [] as IdMatcher[], spaces: new Set<string>() }
    rule.rooms.forEach((pattern, i) => {
      try {
        addRoomPattern(into, pattern)
      } catch (error) {
        if (!(error instanceof PatternError)) throw error
        fail(`rooms[${i}] ${JSON.stringify(pattern)} ${error.message}`)
      }
    })
    rooms = into
  }

  const users = rule.users?.map((pattern, i) => {
    try {
      return compileUserPattern(pattern)
    } catch (error) {
      if (!(error instanceof PatternError)) throw error
      return fail(`users[${i}] ${JSON.stringify(pattern)} ${error.message}`)
    }
  }) ?? null

  let when: CompiledCondition | null = null
  if (rule.when !== undefined) {
    try {
      when = compileCondition(rule.when)
    } catch (error) {
      if (!(error instanceof ConditionError)) throw error
      fail(`when ${error.message}`)
    }
  }

  const effect = rule.effect ?? 'allow'
  if (rule.approval !== undefined && effect === 'deny') fail('approval is only for allow rules (a deny rule always refuses; nobody can approve it away)')

  return {
    name: rule.name,
    effect,
    roles: rule.roles === undefined ? null : new Set(rule.roles),
    orgs: rule.orgs === undefined ? null : new Set(rule.orgs),
    actions,
    rooms,
    users,
    when: when?.evaluate ?? null,
    approval: rule.approval === undefined ? null : { rule: rule.name, roles: rule.approval.roles, count: rule.approval.count },
    warnings: [...targetlessActions(rule), ...(when === null || when.unguardedClaims.length === 0 ? [] : [unguardedWarning(effect, when.unguardedClaims)])]
  }
}

/**
 * Actions the rule names by name although it constrains a target they lack (`users:` on
 * room.members.read, `rooms:` on user.read): the rule never applies to them. Actions reached
 * through "*" or a prefix are left alone, since there the author did not single them out.
 */
function targetlessActions (rule: RuleSource): string[] {
  return rule.actions.filter(isAction).flatMap((action) => {
    const lacking: Array<[field: string, target: string]> = []
    if (rule.rooms !== undefined && !ACTION_TARGETS[action].room) lacking.push(['rooms', 'room'])
    if (rule.users !== undefined && !ACTION_TARGETS[action].user) lacking.push(['users', 'target user'])
    return lacking.map(([field, target]) => `${field} never match ${action}, which has no ${target}: this rule never applies to it (name ${action} in a rule without ${field}:)`)
  })
}

/** The `policy check` warning for a condition that reads claims without checking them first. */
function unguardedWarning (effect: 'allow' | 'deny', claims: readonly string[]): string {
  const them = claims.length === 1 ? 'it' : 'one of them'
  return `when reads ${claims.map(claimExpression).join(', ')} without checking ${claims.map(claimGuard).join(', ')} first: ` +
    `a token without ${them} makes the condition fail to evaluate, and this ${effect} rule then ${effect === 'deny' ? 'matches (deny rules fail closed)' : 'does not match'}`
}

/** Parses and checks a policy; every problem is a PolicyError with one line naming `source`, the rule and the field. */
export function parsePolicy (text: string, source: string, options: PolicyOptions = {}): Policy {
  const value = parseYaml(text, source)
  const schemaError = firstSchemaError(value)
  if (schemaError !== undefined) throw new PolicyError(describeSchemaError(source, value, schemaError))
  const file = value as PolicyFile

  const seen = new Map<string, number>()
  const warnings: string[] = []
  const rules = file.rules.map((rule, index) => {
    const label = `${source}: ${ruleLabel(rule, index)}`
    const fail = (problem: string): never => { throw new PolicyError(`${label}: ${problem}`) }
    const earlier = seen.get(rule.name)
    if (earlier !== undefined) fail(`name is already used by rules[${earlier}]`)
    seen.set(rule.name, index)
    const { warnings: problems, ...compiled } = compileRule(rule, fail)
    for (const problem of problems) warnings.push(`${label}: ${problem}`)
    return compiled
  })
  return new CompiledPolicy(source, rules, false, options, warnings)
}

export function loadPolicyFile (file: string, options: PolicyOptions = {}): Policy {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new PolicyError(`${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  return parsePolicy(text, file, options)
}

export const IMPLICIT_SOURCE = 'implicit (JOIN_ROLES)'
export const IMPLICIT_RULE = 'join-roles'

/** Version 1's behaviour without POLICY_FILE: roles in JOIN_ROLES may do room.join anywhere, nothing else is allowed. */
export function implicitPolicy (joinRoles: readonly string[]): Policy {
  const rule: CompiledRule = {
    name: IMPLICIT_RULE,
    effect: 'allow',
    roles: new Set(joinRoles),
    orgs: null,
    actions: new Set<ActionName>(['room.join']),
    rooms: null,
    users: null,
    when: null,
    approval: null
  }
  return new CompiledPolicy(IMPLICIT_SOURCE, [rule], true)
}
