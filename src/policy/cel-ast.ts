import type { ASTNode } from '@marcbachmann/cel-js'

function isNode (value: unknown): value is ASTNode {
  return typeof value === 'object' && value !== null && 'op' in value && 'args' in value
}

/** Calls `fn` for each direct child expression of `node` (its args hold nodes, lists of nodes, or plain values). */
export function forEachChild (node: ASTNode, fn: (child: ASTNode) => void): void {
  const walk = (value: unknown): void => {
    if (isNode(value)) fn(value)
    else if (Array.isArray(value)) value.forEach(walk)
  }
  walk(node.args)
}
