/** Synapse's answers as values: a status with a JSON body, and its error shapes. */
export interface Answer { status: number, body?: unknown, headers?: Record<string, string> }

export const matrixError = (status: number, errcode: string, error: string, extra: Record<string, unknown> = {}): Answer =>
  ({ status, body: { errcode, error, ...extra } })
export const unrecognized = (status = 400) => matrixError(status, 'M_UNRECOGNIZED', 'Unrecognized request')
export const internalError = () => matrixError(500, 'M_UNKNOWN', 'Internal server error')

/** Thrown to answer early, the way Synapse raises SynapseError. */
export class AnswerError extends Error {
  constructor (readonly answer: Answer) { super('answer') }
}

export const fail = (status: number, errcode: string, error: string): never => {
  throw new AnswerError(matrixError(status, errcode, error))
}

/** Synapse's UserID.from_string: a non-string is a Python TypeError (500), then the two 400s. */
export function parseUserId (value: unknown): string {
  if (typeof value !== 'string') throw new AnswerError(internalError())
  if (!value.startsWith('@')) fail(400, 'M_INVALID_PARAM', 'Expected UserID string to start with \'@\'')
  if (!value.includes(':')) fail(400, 'M_INVALID_PARAM', 'Expected UserID of the form \'@localname:domain\'')
  return value
}

export function domainOf (id: string): string {
  return id.slice(id.indexOf(':') + 1)
}

/** parse_json_object_from_request: M_NOT_JSON, M_BAD_JSON; an empty body is `{}` where allowed. */
export function parseJsonObject (body: string, allowEmpty = false): Record<string, unknown> {
  if (allowEmpty && body === '') return {}
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    return fail(400, 'M_NOT_JSON', 'Content not JSON.')
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(400, 'M_BAD_JSON', 'Content must be a JSON object.')
  return json as Record<string, unknown>
}

/** The room membership servlet reads a body it cannot parse as `{}` (case k14h). */
export function lenientJsonObject (body: string): Record<string, unknown> {
  try {
    return parseJsonObject(body)
  } catch {
    return {}
  }
}
