import { Environment, type ASTNode } from '@marcbachmann/cel-js'
import { forEachChild } from './cel-ast.js'
import { unguardedClaims } from './claim-guards.js'

/**
 * `when:` conditions in CEL (@marcbachmann/cel-js). Each is parsed and type-checked once, at
 * load; evaluating a checked expression skips the library's per-call type check.
 */

/** The variables a condition sees; `room` and `user` are null when the action has none. */
export interface ConditionInput {
  caller: { sub: string, org: string | null, roles: readonly string[], claims: Record<string, unknown> }
  action: string
  room: { id: string, alias: string | null, canonical_alias: string | null } | null
  user: { id: string } | null
}

export type Condition = (input: ConditionInput) => { matched: true } | { matched: false, error?: Error }

export interface CompiledCondition {
  evaluate: Condition
  /** The claims it reads without checking first that the token has them (see claim-guards.ts). */
  unguardedClaims: readonly string[]
}

export class ConditionError extends Error {}

/**
 * Cost bounds: evaluation is linear in the size of the token (at most 8 KiB) because
 * expressions are small, comprehensions (`all`, `exists`, `map`, …) may not nest, and
 * `matches()` is refused (a backtracking regular expression over a claim could take seconds).
 */
const LIMITS = { maxAstNodes: 500, maxDepth: 32, maxListElements: 100, maxMapEntries: 100, maxCallArguments: 8 }
const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter'])
const REFUSED_FUNCTIONS = new Set(['matches'])

const environment = new Environment({ limits: LIMITS })
  // caller's fields are typed, so a typo such as `caller.rols` is refused at load.
  .registerVariable('caller', { schema: { sub: 'string', org: 'dyn', roles: 'list<string>', claims: 'map' } })
  .registerVariable('action', 'string')
  .registerVariable('room', 'dyn')
  .registerVariable('user', 'dyn')

/** Walks the AST, refusing nested comprehensions and refused functions. */
function checkShape (node: ASTNode, comprehensionDepth: number): void {
  let depth = comprehensionDepth
  if (node.op === 'rcall' || node.op === 'call') {
    const name = node.args[0]
    if (REFUSED_FUNCTIONS.has(name)) throw new ConditionError(`uses ${name}(), which policy conditions do not offer (use startsWith, endsWith or contains)`)
    if (node.op === 'rcall' && COMPREHENSIONS.has(name)) {
      depth++
      if (depth > 1) throw new ConditionError(`nests ${name}() inside another comprehension, which is not allowed (its cost would grow with the square of the claims' size)`)
    }
  }
  forEachChild(node, (child) => { checkShape(child, depth) })
}

function firstLine (error: unknown): string {
  const { summary, message } = error as { summary?: unknown, message?: unknown }
  const text = String(typeof summary === 'string' ? summary : message)
  return text.split('\n')[0] ?? text
}

/** `at character 5: Unexpected token` from the library's error, whose message spans several lines. */
function located (error: unknown): string {
  const start = (error as { range?: { start?: unknown } }).range?.start
  return `${typeof start === 'number' ? `at character ${start + 1}: ` : ''}${firstLine(error)}`
}

export function compileCondition (expression: string): CompiledCondition {
  let evaluate
  try {
    evaluate = environment.parse(expression)
  } catch (error) {
    throw new ConditionError(`does not parse ${located(error)}`)
  }
  const checked = evaluate.check()
  if (!checked.valid) throw new ConditionError(`is not valid ${located(checked.error)}`)
  if (checked.type !== 'bool' && checked.type !== 'dyn') throw new ConditionError(`gives ${checked.type ?? 'no value'}, not a bool`)
  checkShape(evaluate.ast, 0)
  const condition: Condition = (input) => {
    try {
      const result: unknown = evaluate(input)
      if (result === true) return { matched: true }
      if (result === false) return { matched: false }
      return { matched: false, error: new Error(`gave ${typeName(result)}, not a bool`) }
    } catch (error) {
      return { matched: false, error: new Error(firstLine(error)) }
    }
  }
  return { evaluate: condition, unguardedClaims: unguardedClaims(evaluate.ast) }
}

function typeName (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'bigint') return 'an int'
  if (typeof value === 'number') return 'a double'
  return `a ${typeof value === 'object' ? 'map' : typeof value}`
}
