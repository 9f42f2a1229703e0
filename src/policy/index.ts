export { ACTIONS, ACTION_TARGETS, isAction, type ActionName } from './actions.js'
export { PolicyError, loadPolicyFile, parsePolicy, implicitPolicy, IMPLICIT_RULE, IMPLICIT_SOURCE } from './load.js'
export type { ActionAccess, ApprovalRequirement, Decision, Explanation, Policy, PolicyCaller, PolicyOptions, PolicyRequest, RoomFacts, RuleTrace, Unmatched, DimensionResult } from './types.js'
