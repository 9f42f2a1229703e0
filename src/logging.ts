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

/** JSON lines by default; LOG_PRETTY=true formats them for people (pino-pretty, in a worker). */
export function createLogger (level: string, { destination, pretty = false }: { destination?: DestinationStream | undefined, pretty?: boolean } = {}): Logger {
  return pino({
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' }
  }, destination ?? (pretty
    ? pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }) as DestinationStream
    : pino.destination({ dest: 1, sync: false })))
}
