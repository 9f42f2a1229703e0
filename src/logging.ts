import pino, { type DestinationStream, type Logger } from 'pino'

/**
 * The service log (not the audit log). Secrets never reach it: request headers are not
 * logged at all, and these paths are censored should any code ever log them.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["Authorization"]',
  'headers.authorization',
  'headers["Authorization"]',
  'authorization',
  'token',
  '*.token',
  'adminToken',
  '*.adminToken',
  'secret',
  '*.secret',
  'config.synapse.adminToken',
  'config.jwt.verification.secret'
]

export function createLogger (level: string, destination?: DestinationStream): Logger {
  return pino({
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime
  }, destination ?? pino.destination({ dest: 1, sync: false }))
}
