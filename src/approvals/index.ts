import type { Redis } from 'ioredis'
import { createMemoryApprovalStore } from './memory-store.js'
import { createRedisApprovalStore } from './redis-store.js'
import type { ApprovalStore, ApprovalStoreLimits } from './types.js'

export * from './types.js'
export { heldRequest, holdForApproval, SECRET_BODY_FIELDS } from './held.js'
export { ApprovalAnswer, approvalRoutes, approvalView, approvalAuditField, heldAnswer, sweepExpiredApprovals, type ActionAnswer, type ApprovalAuditEvent, type AuthenticatedCaller, type ApprovalRoutesOptions } from './routes.js'
export { createMemoryApprovalStore, createRedisApprovalStore }

/** In Redis when the shared state has a client (REDIS_URL), else in this process (lost on restart). */
export function createApprovalStore (redis: Redis | undefined, limits: ApprovalStoreLimits): ApprovalStore {
  return redis === undefined ? createMemoryApprovalStore(limits) : createRedisApprovalStore(redis, limits)
}
