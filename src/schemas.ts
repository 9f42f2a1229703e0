import { Type } from '@sinclair/typebox'
import { ADOPT_FIRST, DETAILS, PROBLEMS, type ProblemCode } from './errors.js'
import { isRoomIdOrAlias, isUserId } from './matrix-ids.js'

/** Ajv formats for the Matrix grammar; registered once in buildApp. */
export const MATRIX_FORMATS = {
  'matrix-user-id': isUserId,
  'matrix-room-id-or-alias': isRoomIdOrAlias
}

/** How every request is validated: nothing removed, coerced or defaulted; the Matrix formats. */
export const AJV_OPTIONS = { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false, formats: MATRIX_FORMATS } as const

export const RoomParams = Type.Object({
  roomIdOrAlias: Type.String({
    format: 'matrix-room-id-or-alias',
    description: 'A room ID (!opaque:server, or !opaque for room version 12) or an alias (#name:server, with # sent as %23).',
    examples: ['#helpdesk:example.com', '!abcdefghijklmnop:example.com']
  })
})

export const UserParam = Type.String({
  format: 'matrix-user-id',
  description: 'A local Matrix user ID, percent-encoded or plain (@alice:example.com).',
  examples: ['@alice:example.com']
})

export const RoomUserParams = Type.Object({ roomIdOrAlias: RoomParams.properties.roomIdOrAlias, userId: UserParam })
export const UserParams = Type.Object({ userId: UserParam })

export const Reason = Type.String({
  maxLength: 512,
  pattern: '^[^\\u0000-\\u001F\\u007F-\\u009F]*$',
  description: 'Why (for the audit entry, and for Synapse where it takes one, e.g. the kick). At most 512 characters, no control characters.',
  examples: ['Ticket HD-4711: left the company']
})

const TargetUser = Type.String({ format: 'matrix-user-id', description: 'A local Matrix user ID.', examples: ['@alice:example.com'] })

export const JoinBody = Type.Object({ user_id: TargetUser, reason: Type.Optional(Reason) }, { additionalProperties: false })
export const PromoteBody = JoinBody
export const RemoveBody = Type.Object({ reason: Type.Optional(Reason) }, { additionalProperties: false })

export const JoinResult = Type.Object({
  room_id: Type.String({ description: 'The room ID, resolved when an alias was given.' }),
  user_id: Type.String()
})

export const DryRunQuery = Type.Object({
  dry_run: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'true: check everything, change nothing.' }))
}, { additionalProperties: false })

export const DryRunResult = Type.Object({
  dry_run: Type.Literal(true),
  would_succeed: Type.Boolean(),
  code: Type.Optional(Type.String({ description: 'The code the real call would most likely get.' })),
  approval_required: Type.Optional(Type.Literal(true, { description: 'The real request would be held until approved (202 with the pending approval; see docs/approvals.md).' })),
  checks: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), detail: Type.String() }))
}, { description: 'A dry run: nothing changed in Synapse.' })

/** Every code the gateway answers with (src/errors.ts), as an enum for clients to switch on. */
export const ProblemCodeSchema = Type.Unsafe<ProblemCode>({ type: 'string', enum: Object.keys(PROBLEMS), description: 'Stable and machine-readable; see docs/errors.md.' })

export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: ProblemCodeSchema,
  request_id: Type.String(),
  matrix_errcode: Type.Optional(Type.String())
}, { $id: 'Problem', description: 'RFC 9457 problem details; `code` is stable and machine-readable, `detail` is for people.' })

/** A reference to the shared Problem schema (registered once with addSchema). */
export const ProblemRef = Type.Ref(Problem)

/**
 * OpenAPI responses for the problems a route can answer, grouped by status, each code with an
 * example. Serialized with the Problem schema whatever the status.
 */
export function problemResponses (codes: ProblemCode[]) {
  const byStatus = new Map<number, ProblemCode[]>()
  for (const code of codes) {
    const status = PROBLEMS[code].status
    byStatus.set(status, [...(byStatus.get(status) ?? []), code])
  }
  return Object.fromEntries([...byStatus].map(([status, group]) => [status, {
    description: group.map((code) => `\`${code}\`: ${PROBLEMS[code].title}`).join('; '),
    content: {
      'application/problem+json': {
        schema: ProblemRef,
        examples: Object.fromEntries(group.map((code) => [code, {
          summary: PROBLEMS[code].title,
          value: {
            type: `urn:synapse-admin-gateway:problem:${code}`,
            title: PROBLEMS[code].title,
            status,
            detail: PROBLEM_EXAMPLE_DETAILS[code] ?? PROBLEMS[code].title,
            code,
            request_id: '0b6f5e0e-2c1d-4b8e-9f55-3f2f3c1f8a10'
          }
        }]))
      }
    }
  }]))
}

/** Example details: the fixed ones as answered, plus two that name roles or Synapse's words. */
const PROBLEM_EXAMPLE_DETAILS: Partial<Record<ProblemCode, string>> = {
  ...DETAILS,
  insufficient_role: 'This action needs one of the roles: matrix-admin.',
  admin_not_in_room: `The room is not public and the gateway's admin account is not in it; ${ADOPT_FIRST}`
}

/** Problems every action route can answer: the pipeline's own. */
export const ACTION_PROBLEMS: ProblemCode[] = [
  'invalid_request', 'missing_token', 'invalid_token', 'token_expired', 'org_not_allowed', 'insufficient_role', 'policy_denied',
  'rate_limited', 'upstream_error', 'upstream_auth_failed', 'upstream_unavailable', 'keys_unavailable', 'audit_unavailable',
  'shutting_down', 'upstream_timeout'
]
