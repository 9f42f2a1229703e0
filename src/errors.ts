import createError from '@fastify/error'

/** What an audit entry says happened (`approval_requested`: held until approved, 202; docs/approvals.md). */
export type Outcome = 'success' | 'denied' | 'invalid' | 'failed' | 'unknown' | 'dry_run' | 'approval_requested'

interface ProblemKind { status: number, title: string, outcome: Outcome }

/** Every `code` the gateway answers with: stable, machine-readable, documented in the README. */
export const PROBLEMS = {
  invalid_body: { status: 400, title: 'Invalid request body', outcome: 'invalid' },
  invalid_user_id: { status: 400, title: 'Invalid Matrix user ID', outcome: 'invalid' },
  invalid_room: { status: 400, title: 'Invalid room ID or alias', outcome: 'invalid' },
  user_not_local: { status: 400, title: 'User is not local to this homeserver', outcome: 'invalid' },
  room_not_local: { status: 400, title: 'Room alias is not local to this homeserver', outcome: 'invalid' },
  invalid_request: { status: 400, title: 'Malformed request', outcome: 'invalid' },
  reason_required: { status: 400, title: 'A reason is required', outcome: 'invalid' },
  password_rejected: { status: 400, title: 'Synapse refused the password', outcome: 'failed' },
  missing_token: { status: 401, title: 'Bearer token required', outcome: 'denied' },
  invalid_token: { status: 401, title: 'Invalid token', outcome: 'denied' },
  token_expired: { status: 401, title: 'Token expired', outcome: 'denied' },
  org_not_allowed: { status: 403, title: 'Organisation not allowed', outcome: 'denied' },
  insufficient_role: { status: 403, title: 'Insufficient role', outcome: 'denied' },
  policy_denied: { status: 403, title: 'Not allowed by policy', outcome: 'denied' },
  protected_target: { status: 403, title: 'Protected target', outcome: 'denied' },
  admin_not_in_room: { status: 403, title: 'Admin account is not in the room', outcome: 'failed' },
  admin_cannot_invite: { status: 403, title: 'Admin account may not invite into the room', outcome: 'failed' },
  admin_cannot_kick: { status: 403, title: 'Admin account may not remove this user', outcome: 'failed' },
  user_banned: { status: 403, title: 'User is banned from the room', outcome: 'failed' },
  room_blocked: { status: 403, title: 'Room is blocked on this homeserver', outcome: 'failed' },
  synapse_forbidden: { status: 403, title: 'Synapse refused the action', outcome: 'failed' },
  not_found: { status: 404, title: 'Not found', outcome: 'invalid' },
  room_not_found: { status: 404, title: 'Room not found', outcome: 'failed' },
  user_not_found: { status: 404, title: 'User not found', outcome: 'failed' },
  method_not_allowed: { status: 405, title: 'Method not allowed', outcome: 'invalid' },
  request_timeout: { status: 408, title: 'Request not received in time', outcome: 'invalid' },
  user_deactivated: { status: 409, title: 'User is deactivated', outcome: 'failed' },
  room_cannot_be_adopted: { status: 409, title: 'Room cannot be adopted', outcome: 'failed' },
  idempotency_in_progress: { status: 409, title: 'A request with this Idempotency-Key is still running', outcome: 'denied' },
  payload_too_large: { status: 413, title: 'Request body too large', outcome: 'invalid' },
  batch_too_large: { status: 413, title: 'Batch too large', outcome: 'invalid' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type', outcome: 'invalid' },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key reused with another request', outcome: 'invalid' },
  headers_too_large: { status: 431, title: 'Request headers too large', outcome: 'invalid' },
  rate_limited: { status: 429, title: 'Too many requests', outcome: 'denied' },
  // Approvals (four-eyes), src/approvals/.
  password_not_held: { status: 400, title: 'A password cannot wait for an approval', outcome: 'invalid' },
  self_approval: { status: 403, title: 'The requester cannot approve its own request', outcome: 'denied' },
  approval_not_found: { status: 404, title: 'Approval not found', outcome: 'invalid' },
  approval_decided: { status: 409, title: 'Approval already decided', outcome: 'denied' },
  approval_expired: { status: 410, title: 'Approval expired', outcome: 'denied' },
  approval_stale: { status: 409, title: 'The room changed since the request was approved', outcome: 'denied' },
  approvals_full: { status: 503, title: 'Too many pending approvals', outcome: 'failed' },
  internal_error: { status: 500, title: 'Internal error', outcome: 'failed' },
  // The running Synapse cannot do the action: nothing was changed (src/synapse/version.ts).
  not_supported_by_synapse: { status: 501, title: 'Not supported by this Synapse version', outcome: 'failed' },
  delegated_to_mas: { status: 501, title: 'Delegated to the Matrix Authentication Service', outcome: 'failed' },
  upstream_error: { status: 502, title: 'Bad answer from Synapse', outcome: 'failed' },
  upstream_auth_failed: { status: 502, title: 'Synapse rejected the admin token', outcome: 'failed' },
  upstream_unavailable: { status: 503, title: 'Synapse unavailable', outcome: 'failed' },
  keys_unavailable: { status: 503, title: 'Signing keys unavailable', outcome: 'failed' },
  audit_unavailable: { status: 503, title: 'Audit log unavailable', outcome: 'failed' },
  state_unavailable: { status: 503, title: 'Shared state unavailable', outcome: 'failed' },
  shutting_down: { status: 503, title: 'Shutting down', outcome: 'failed' },
  upstream_timeout: { status: 504, title: 'Synapse timed out', outcome: 'failed' }
} as const satisfies Record<string, ProblemKind>

export type ProblemCode = keyof typeof PROBLEMS

/** Details that never vary, used by the code that answers them and by the OpenAPI examples. */
export const DETAILS = {
  invalid_body: 'The body must be a JSON object with a string user_id, e.g. {"user_id": "@alice:example.com"}.',
  invalid_user_id: 'user_id must be a Matrix user ID such as @alice:example.com.',
  invalid_room: 'The room must be a room ID (!opaque:server) or an alias (#name:server, sent as %23name:server).',
  missing_token: 'Send your organisation\'s token as Authorization: Bearer <token>.',
  user_deactivated: 'The user\'s account is deactivated; reactivate it in Synapse first.',
  unsupported_media_type: 'Send the body as JSON with Content-Type: application/json (curl --json \'{"user_id": "@alice:example.com"}\').',
  upstream_timeout: 'Synapse did not answer in time. The action may or may not have happened: check before retrying.'
} as const satisfies Partial<Record<ProblemCode, string>>

/** What to do when the gateway's account lacks a place or power in a room (admin_not_in_room, admin_cannot_invite, admin_cannot_kick). */
export const ADOPT_FIRST = 'adopt the room first (room.adopt: POST /v1/rooms/{room}/adopt), which makes the gateway\'s account a member with power level 100.'

export interface ProblemOptions {
  /** Synapse's errcode, when Synapse gave one. */
  matrixErrcode?: string
  /** Seconds, for 429 and 503 answers. */
  retryAfterS?: number
  /** Overrides the code's default outcome (e.g. a 504 after the join was sent is `unknown`). */
  outcome?: Outcome
  /** Extra response headers (WWW-Authenticate, Allow). */
  headers?: Record<string, string>
  /** Overrides the code's usual status (readiness answers 503 whatever the cause). */
  status?: number
}

const BaseGatewayError = createError('GATEWAY_PROBLEM', '%s', 500)

/** An error the gateway answers on purpose, rendered as RFC 9457 problem+json. */
export class GatewayError extends BaseGatewayError {
  readonly problem: ProblemCode
  readonly outcome: Outcome
  readonly matrixErrcode: string | undefined
  readonly retryAfterS: number | undefined
  readonly headers: Record<string, string> | undefined

  constructor (code: ProblemCode, detail: string, options: ProblemOptions = {}) {
    super(detail)
    this.problem = code
    ;(this as { statusCode: number }).statusCode = options.status ?? PROBLEMS[code].status
    this.outcome = options.outcome ?? PROBLEMS[code].outcome
    this.matrixErrcode = options.matrixErrcode
    this.retryAfterS = options.retryAfterS
    this.headers = options.headers
  }
}

/** Problem errors are expected answers: building a stack trace for each would only cost time. */
export function problem (code: ProblemCode, detail: string, options?: ProblemOptions): GatewayError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new GatewayError(code, detail, options)
  } finally {
    Error.stackTraceLimit = limit
  }
}

export interface ProblemBody {
  type: string
  title: string
  status: number
  detail: string
  code: ProblemCode
  request_id: string
  matrix_errcode?: string
}

export function problemBody (error: GatewayError, requestId: string): ProblemBody {
  const body: ProblemBody = {
    type: `urn:synapse-admin-gateway:problem:${error.problem}`,
    title: PROBLEMS[error.problem].title,
    status: error.statusCode as number,
    detail: error.message,
    code: error.problem,
    request_id: requestId
  }
  if (error.matrixErrcode !== undefined) body.matrix_errcode = error.matrixErrcode
  return body
}
