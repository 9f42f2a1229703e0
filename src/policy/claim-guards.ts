import type { ASTNode } from '@marcbachmann/cel-js'
import { forEachChild } from './cel-ast.js'

/**
 * Which claims a `when` condition reads without first checking that the token has them, for the
 * `policy check` warning. A token without such a claim makes the condition fail to evaluate: a
 * deny rule then matches (fail closed), an allow rule does not.
 *
 * A read of `caller.claims.x` (or `caller.claims["x"]`) is guarded where `has(caller.claims.x)`
 * or `"x" in caller.claims` has already decided the outcome when the claim is missing:
 * - `a && b`: a guard that must hold for one side to be true guards the other side (CEL's `&&`
 *   is false when either side is false, even when the other fails);
 * - `a || b`: a guard that must hold for one side to be false guards the other side;
 * - `c ? t : f`: what `c` true implies guards `t`, what `c` false implies guards `f`.
 * Anything else (a guard in an unrelated place, reads inside `has()` of a deeper field such as
 * `has(caller.claims.x.y)`, which reads `x`) counts as unguarded.
 */
export function unguardedClaims (root: ASTNode): string[] {
  const found: string[] = []
  const visit = (node: ASTNode, guarded: ReadonlySet<string>): void => {
    const claim = claimRead(node)
    if (claim !== null) {
      if (!guarded.has(claim) && !found.includes(claim)) found.push(claim)
      return
    }
    switch (node.op) {
      case '&&': {
        const [left, right] = node.args as [ASTNode, ASTNode]
        visit(left, union(guarded, presentWhen(right, true)))
        visit(right, union(guarded, presentWhen(left, true)))
        return
      }
      case '||': {
        const [left, right] = node.args as [ASTNode, ASTNode]
        visit(left, union(guarded, presentWhen(right, false)))
        visit(right, union(guarded, presentWhen(left, false)))
        return
      }
      case '?:': {
        const [test, then, otherwise] = node.args as [ASTNode, ASTNode, ASTNode]
        visit(test, guarded)
        visit(then, union(guarded, presentWhen(test, true)))
        visit(otherwise, union(guarded, presentWhen(test, false)))
        return
      }
      case 'call': {
        const [name, args] = node.args as [string, ASTNode[]]
        const [tested] = args
        // has(e.f) tests f without reading it, but evaluates e.
        if (name === 'has' && tested !== undefined && tested.op === '.') {
          visit((tested.args as [ASTNode, string])[0], guarded)
          return
        }
        break
      }
    }
    forEachChild(node, (child) => { visit(child, guarded) })
  }
  visit(root, new Set())
  return found
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

/** How a claim is written in a condition: `caller.claims.x`, or `caller.claims["x-y"]` when not an identifier. */
export function claimExpression (claim: string): string {
  return IDENTIFIER.test(claim) ? `caller.claims.${claim}` : `caller.claims[${JSON.stringify(claim)}]`
}

/** The check that guards a read of the claim: `has()` for an identifier (CEL's has() takes only a field). */
export function claimGuard (claim: string): string {
  return IDENTIFIER.test(claim) ? `has(${claimExpression(claim)})` : `${JSON.stringify(claim)} in caller.claims`
}

function isClaimsMap (node: ASTNode): boolean {
  if (node.op !== '.') return false
  const [object, field] = node.args as [ASTNode, string]
  return field === 'claims' && object.op === 'id' && object.args === 'caller'
}

/** `x` for `caller.claims.x` or `caller.claims["x"]`; null for anything else (a computed key included). */
function claimRead (node: ASTNode): string | null {
  if (node.op === '.') {
    const [object, field] = node.args as [ASTNode, string]
    return isClaimsMap(object) ? field : null
  }
  if (node.op === '[]') {
    const [object, key] = node.args as [ASTNode, ASTNode]
    return isClaimsMap(object) && key.op === 'value' && typeof key.args === 'string' ? key.args : null
  }
  return null
}

/** The claims that must be present for `node` to evaluate to `outcome` (without an error). */
function presentWhen (node: ASTNode, outcome: boolean): Set<string> {
  switch (node.op) {
    case 'call': {
      const [name, args] = node.args as [string, ASTNode[]]
      const [tested] = args
      if (outcome && name === 'has' && args.length === 1 && tested !== undefined) {
        const claim = claimRead(tested)
        if (claim !== null && tested.op === '.') return new Set([claim])
      }
      return new Set()
    }
    case 'in': {
      const [key, map] = node.args as [ASTNode, ASTNode]
      return outcome && key.op === 'value' && typeof key.args === 'string' && isClaimsMap(map) ? new Set([key.args]) : new Set()
    }
    case '!_': return presentWhen(node.args as ASTNode, !outcome)
    case '&&': {
      const [left, right] = node.args as [ASTNode, ASTNode]
      return outcome ? union(presentWhen(left, true), presentWhen(right, true)) : new Set()
    }
    case '||': {
      const [left, right] = node.args as [ASTNode, ASTNode]
      return outcome ? new Set() : union(presentWhen(left, false), presentWhen(right, false))
    }
    default: return new Set()
  }
}

function union (a: ReadonlySet<string>, b: ReadonlySet<string>): Set<string> {
  return new Set([...a, ...b])
}
