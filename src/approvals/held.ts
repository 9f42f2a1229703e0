import { problem } from '../errors.js'
import { StateUnavailableError } from '../state/unavailable.js'
import { ApprovalsFullError, type Approval, type ApprovalStore, type HeldRequest, type NewApproval } from './types.js'

/**
 * Body fields that are secrets, per action. A request held for approval never keeps them (not in
 * Redis, not in memory): it is refused instead (400 password_not_held), so the requester sends
 * it again without them and the action generates what it needs when it runs.
 */
export const SECRET_BODY_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'user.password.reset': ['new_password']
}

const DETAILS: Readonly<Record<string, string>> = {
  new_password: 'This password reset needs an approval, and a password is never stored while a request waits: leave new_password out. The gateway generates a strong password when the reset runs and answers it once, to the approver whose approval runs it.'
}

/** The request as it is held: method, path and query, and the body (which must carry no secret). */
export function heldRequest (action: string, method: string, url: string, body: unknown): HeldRequest {
  if (body !== null && typeof body === 'object') {
    for (const field of SECRET_BODY_FIELDS[action] ?? []) {
      if (Object.hasOwn(body, field)) {
        throw problem('password_not_held', DETAILS[field] ?? `This request needs an approval and cannot carry ${field} while it waits: leave it out.`)
      }
    }
  }
  return { method, url, body: body ?? undefined }
}

/**
 * For the pipeline, once the policy said "only after an approval": stores the request and
 * returns the pending approval, or throws the problem to answer (password_not_held,
 * approvals_full, state_unavailable).
 */
export async function holdForApproval (store: ApprovalStore, request: Omit<NewApproval, 'held'> & { method: string, url: string, body: unknown }): Promise<Approval> {
  const { method, url, body, ...rest } = request
  const held = heldRequest(request.action, method, url, body)
  try {
    return await store.create({ ...rest, held })
  } catch (error) {
    if (error instanceof ApprovalsFullError) {
      throw problem('approvals_full', 'The gateway holds as many pending approvals as it may (APPROVAL_MAX_ENTRIES, APPROVAL_MAX_BYTES); retry once some are decided or expire.', { retryAfterS: 60 })
    }
    if (error instanceof StateUnavailableError) throw stateUnavailable()
    throw error
  }
}

export function stateUnavailable (): ReturnType<typeof problem> {
  return problem('state_unavailable', 'The gateway\'s shared state (Redis) cannot be reached, so approvals can be neither stored, read nor decided; retry shortly.', { retryAfterS: 2 })
}
