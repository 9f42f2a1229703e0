/**
 * Redis could not be reached (or did not answer) within the client's short deadline. Its message
 * names the cause only ("Connection is closed", "Command timed out"): never a key, a URL or an
 * argument of the command that failed.
 */
export class StateUnavailableError extends Error {
  override readonly name = 'StateUnavailableError'
  constructor (reason: string) {
    super(`Shared state (Redis) unavailable: ${reason}`)
  }
}

/** Turns whatever the Redis client rejected with into a StateUnavailableError that carries no command arguments. */
export function unavailable (error: unknown): StateUnavailableError {
  if (error instanceof StateUnavailableError) return error
  const reason = error instanceof Error ? error.message : 'unknown error'
  return new StateUnavailableError(reason.split('\n', 1).join(''))
}
