/**
 * The offline policy command: `npm run policy -- check FILE` and `… explain FILE --action A …`
 * (`node dist/policy/cli.js …` in the image; cli.ts is the process around this module). Exit
 * codes: 0 ok (warnings included) / allowed, 3 denied, 4 allowed only after an approval, 1 bad
 * policy file, 2 usage.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { isRoomAlias, isRoomId, isUserId } from '../matrix-ids.js'
import { ACTIONS, ACTION_TARGETS, isAction } from './actions.js'
import { loadPolicyFile, PolicyError } from './load.js'
import type { ApprovalRequirement, Explanation, Policy, PolicyRequest, RoomFacts, RuleTrace } from './types.js'

const USAGE = `usage: policy check FILE
       policy explain FILE --action ACTION [--sub S] [--roles r1,r2] [--org O] [--claims JSON|@file.json]
                           [--room-id !room:server] [--alias #alias:server] [--canonical-alias #alias:server]
                           [--alt-alias #alias:server]... [--in-space space:<room ID or alias>]... [--user @user:server]
actions: ${ACTIONS.join(', ')}`

class UsageError extends Error {}

const EXPLAIN_OPTIONS = {
  action: { type: 'string' },
  sub: { type: 'string' },
  roles: { type: 'string' },
  org: { type: 'string' },
  claims: { type: 'string' },
  'room-id': { type: 'string' },
  alias: { type: 'string' },
  'canonical-alias': { type: 'string' },
  'alt-alias': { type: 'string', multiple: true },
  'in-space': { type: 'string', multiple: true },
  user: { type: 'string' }
} as const

function readClaims (value: string | undefined): Record<string, unknown> {
  if (value === undefined) return {}
  let text = value
  if (value.startsWith('@')) {
    try {
      text = readFileSync(value.slice(1), 'utf8')
    } catch (error) {
      throw new UsageError(`--claims ${value}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  let claims: unknown
  try {
    claims = JSON.parse(text)
  } catch {
    throw new UsageError('--claims must be a JSON object (or @file.json holding one)')
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new UsageError('--claims must be a JSON object (or @file.json holding one)')
  return claims as Record<string, unknown>
}

function rolesFrom (option: string | undefined, claims: Record<string, unknown>): string[] {
  if (option !== undefined) return option.split(',').map((role) => role.trim()).filter((role) => role !== '')
  const roles = claims.roles
  if (typeof roles === 'string') return roles.split(' ').filter((role) => role !== '')
  return Array.isArray(roles) ? roles.filter((role): role is string => typeof role === 'string') : []
}

function checked (value: string | undefined, option: string, valid: (id: string) => boolean, what: string): string | null {
  if (value === undefined) return null
  if (!valid(value)) throw new UsageError(`--${option} ${JSON.stringify(value)} is not ${what}`)
  return value
}

function buildRequest (args: string[]): PolicyRequest {
  let values
  try {
    values = parseArgs({ args, options: EXPLAIN_OPTIONS, strict: true, allowPositionals: false }).values
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const action = values.action
  if (action === undefined) throw new UsageError('explain needs --action')
  if (!isAction(action)) throw new UsageError(`--action ${JSON.stringify(action)} is not an action`)
  const claims = readClaims(values.claims)
  const targets = ACTION_TARGETS[action]

  const roomId = checked(values['room-id'], 'room-id', isRoomId, 'a room ID')
  const alias = checked(values.alias, 'alias', isRoomAlias, 'an alias')
  const canonicalAlias = checked(values['canonical-alias'], 'canonical-alias', isRoomAlias, 'an alias')
  const altAliases = (values['alt-alias'] ?? []).map((value) => checked(value, 'alt-alias', isRoomAlias, 'an alias') as string)
  const spaces = values['in-space'] ?? []
  const roomFactsGiven = alias !== null || canonicalAlias !== null || altAliases.length > 0 || spaces.length > 0
  let room: RoomFacts | null = null
  if (roomId !== null) {
    if (!targets.room) throw new UsageError(`${action} has no room; leave out --room-id`)
    room = { id: roomId, alias, canonical_alias: canonicalAlias, alt_aliases: altAliases, spaces }
  } else if (targets.room) {
    throw new UsageError(`${action} acts on a room: give --room-id (the room ID the alias resolves to)`)
  } else if (roomFactsGiven) {
    throw new UsageError(`${action} has no room; leave out the room options`)
  }

  const userId = checked(values.user, 'user', isUserId, 'a user ID')
  if (userId !== null && !targets.user) throw new UsageError(`${action} has no target user; leave out --user`)
  if (userId === null && targets.user) throw new UsageError(`${action} acts on a user: give --user`)

  const sub = values.sub ?? (typeof claims.sub === 'string' ? claims.sub : 'cli')
  const org = values.org ?? (typeof claims.org === 'string' ? claims.org : null)
  return {
    caller: { sub, org, roles: rolesFrom(values.roles, claims), claims: { ...claims, sub } },
    action,
    room,
    user: userId === null ? null : { id: userId }
  }
}

function describeRequest (request: PolicyRequest): string {
  const { caller, room, user } = request
  const parts = [`${request.action} by ${caller.sub} (roles: ${caller.roles.join(', ') || 'none'}; org: ${caller.org ?? 'none'})`]
  if (room !== null) parts.push(`in ${room.alias === null ? room.id : `${room.alias} (${room.id})`}`)
  if (user !== null) parts.push(`on ${user.id}`)
  return parts.join(' ')
}

/** `1 approval by security-lead`, `2 approvals by security-lead or hr-lead` */
function approvalText ({ roles, count }: ApprovalRequirement): string {
  return `${count} ${count === 1 ? 'approval' : 'approvals'} by ${roles.join(' or ')}`
}

function verdictOf ({ decision }: Explanation, deciding: RuleTrace | undefined): string {
  if (decision.allowed) return `ALLOWED by rule ${JSON.stringify(decision.rule)}`
  if (decision.approval !== undefined) {
    return `ALLOWED after ${approvalText(decision.approval)} (rule ${JSON.stringify(decision.rule)})`
  }
  if (decision.rule === null) return `DENIED: no rule allows it (what did not match: ${decision.unmatched ?? 'action'})`
  const failedClosed = deciding?.when === 'error' ? ` (its condition failed to evaluate, so it matches: ${deciding.whenError ?? ''})` : ''
  return `DENIED by deny rule ${JSON.stringify(decision.rule)}${failedClosed}`
}

function ruleNotes (rules: readonly RuleTrace[]): string[] {
  return rules.flatMap((trace) => {
    const notes: string[] = []
    if (trace.whenError !== undefined) {
      const consequence = trace.effect === 'deny' ? 'a deny rule fails closed: counted as met' : 'counted as not met'
      notes.push(`  rule ${JSON.stringify(trace.rule)}: when failed to evaluate (${consequence}): ${trace.whenError}`)
    }
    if (trace.approval !== null && trace.action === 'yes') notes.push(`  rule ${JSON.stringify(trace.rule)}: allows only after ${approvalText(trace.approval)}`)
    return notes
  })
}

function formatExplanation (policy: Policy, request: PolicyRequest, explanation: Explanation): string {
  const { decision, rules } = explanation
  const verdict = verdictOf(explanation, rules.find((trace) => trace.rule === decision.rule))
  const header = ['rule', 'effect', 'roles', 'orgs', 'action', 'room', 'user', 'when', 'result']
  const rows = rules.map((trace) => [trace.rule, trace.effect, trace.roles, trace.orgs, trace.action, trace.room, trace.user, trace.when, trace.matched ? 'MATCH' : '-'])
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] as string).length)))
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd()
  const notes = ruleNotes(rules)
  return [
    `${policy.source}: ${describeRequest(request)}`,
    verdict,
    decision.allowed
      ? ''
      : decision.approval === undefined
        ? `the caller gets 403 policy_denied: ${decision.detail}`
        : 'it runs only once approved; approvers are distinct callers other than the requester',
    '',
    line(header),
    ...rows.map(line),
    ...(notes.length > 0 ? ['', ...notes] : []),
    '',
    'yes/no: the dimension matched or not; any: the rule does not constrain it; absent: the rule constrains it but the action has none (the rule does not match);',
    'error: the condition failed to evaluate (a deny rule then matches, an allow rule does not)'
  ].filter((text, i) => i !== 2 || text !== '').join('\n') + '\n'
}

/** Where the command writes: the process's stdout and stderr, or a test's buffers. */
export interface CommandOutput { stdout: (text: string) => void, stderr: (text: string) => void }

function run (argv: string[], out: CommandOutput): number {
  const [command, file, ...rest] = argv
  if ((command !== 'check' && command !== 'explain') || file === undefined || file.startsWith('--')) throw new UsageError('')
  if (command === 'check' && rest.length > 0) throw new UsageError(`check takes one FILE, not ${rest.join(' ')}`)
  const request = command === 'explain' ? buildRequest(rest) : undefined
  let policy: Policy
  try {
    policy = loadPolicyFile(file)
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error
    out.stderr(`${error.message}\n`)
    return 1
  }
  if (request === undefined) {
    for (const warning of policy.warnings) out.stderr(`warning: ${warning}\n`)
    const warned = policy.warnings.length === 0 ? '' : ` (${policy.warnings.length} ${policy.warnings.length === 1 ? 'warning' : 'warnings'})`
    out.stdout(`${file}: ${policy.ruleCount} ${policy.ruleCount === 1 ? 'rule' : 'rules'}, ok${warned}\n`)
    return 0
  }
  const explanation = policy.explain(request)
  out.stdout(formatExplanation(policy, request, explanation))
  const { decision } = explanation
  return decision.allowed ? 0 : decision.approval === undefined ? 3 : 4
}

/** Runs `policy check|explain …` with `argv` (the arguments after the command name); returns the exit code. */
export function runPolicyCommand (argv: string[], out: CommandOutput): number {
  try {
    return run(argv, out)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    out.stderr(`${error.message === '' ? '' : `policy: ${error.message}\n`}${USAGE}\n`)
    return 2
  }
}
