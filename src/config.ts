import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { isServerName } from './matrix-ids.js'
import { ConfigError } from './config-error.js'
import { ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS, allowedAlgorithms, parsePublicKeyPem } from './auth/keys.js'

export { ConfigError }

/**
 * Every environment variable the service reads, as strings. Checked once at start;
 * `loadConfig` turns the result into the typed configuration that `buildApp` takes.
 */
const Integer = (options: { minimum: number, maximum: number, default?: string }) =>
  Type.String({ pattern: '^[0-9]+$', ...options })
const Bool = (defaultValue: 'true' | 'false') =>
  Type.Union([Type.Literal('true'), Type.Literal('false')], { default: defaultValue })
const CommaList = Type.String({ minLength: 1 })

export const EnvSchema = Type.Object({
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Integer({ minimum: 0, maximum: 65535, default: '8080' }),
  SYNAPSE_URL: Type.String({ pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$' }),
  SYNAPSE_ADMIN_TOKEN: Type.Optional(Type.String()),
  SYNAPSE_ADMIN_TOKEN_FILE: Type.Optional(Type.String()),
  SYNAPSE_SERVER_NAME: Type.String({ minLength: 1 }),
  SYNAPSE_TIMEOUT_MS: Integer({ minimum: 100, maximum: 600000, default: '10000' }),
  SYNAPSE_MAX_CONCURRENCY: Integer({ minimum: 1, maximum: 10000, default: '64' }),
  SYNAPSE_QUEUE_TIMEOUT_MS: Integer({ minimum: 0, maximum: 600000, default: '2000' }),
  SHUTDOWN_GRACE_MS: Integer({ minimum: 1000, maximum: 3600000, default: '30000' }),
  JWT_SECRET: Type.Optional(Type.String()),
  JWT_SECRET_FILE: Type.Optional(Type.String()),
  JWT_PUBLIC_KEY: Type.Optional(Type.String()),
  JWT_PUBLIC_KEY_FILE: Type.Optional(Type.String()),
  JWT_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),
  JWT_ALGORITHMS: Type.Optional(CommaList),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  JWT_CLOCK_TOLERANCE_S: Integer({ minimum: 0, maximum: 3600, default: '30' }),
  JWT_MAX_AGE_S: Integer({ minimum: 1, maximum: 31536000, default: '86400' }),
  JWT_ROLES_CLAIM: Type.String({ pattern: '^[^.\\s]+(\\.[^.\\s]+)*$', default: 'roles' }),
  JWT_ORG_CLAIM: Type.String({ pattern: '^[^.\\s]+(\\.[^.\\s]+)*$', default: 'org' }),
  ALLOWED_ORGS: Type.Optional(CommaList),
  JOIN_ROLES: Type.String({ minLength: 1, default: 'matrix-admin' }),
  RATE_LIMIT_PER_MINUTE: Integer({ minimum: 1, maximum: 1000000, default: '120' }),
  RATE_LIMIT_PER_IP_PER_MINUTE: Integer({ minimum: 1, maximum: 10000000, default: '1200' }),
  ALLOW_REMOTE_ROOMS: Bool('false'),
  AUDIT_LOG_FILE: Type.Optional(Type.String({ minLength: 1 })),
  AUDIT_CHAIN_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  POLICY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  REQUIRE_REASON: Bool('false'),
  IDEMPOTENCY_TTL_S: Integer({ minimum: 1, maximum: 31536000, default: '86400' }),
  BATCH_MAX_ITEMS: Integer({ minimum: 1, maximum: 10000, default: '100' }),
  BATCH_CONCURRENCY: Integer({ minimum: 1, maximum: 256, default: '4' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^(redis|rediss|valkey|valkeys)://[^\\s]+$' })),
  DOCS_ENABLED: Bool('true'),
  METRICS_ENABLED: Bool('true'),
  METRICS_PORT: Type.Optional(Integer({ minimum: 1, maximum: 65535 })),
  TRUST_PROXY: Type.Optional(Type.String({ minLength: 1 })),
  LOG_PRETTY: Bool('false'),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' }
  )
})
export type Env = Static<typeof EnvSchema>

const INTEGER_VARIABLES = ['PORT', 'METRICS_PORT', 'SYNAPSE_TIMEOUT_MS', 'SYNAPSE_MAX_CONCURRENCY', 'SYNAPSE_QUEUE_TIMEOUT_MS', 'SHUTDOWN_GRACE_MS', 'IDEMPOTENCY_TTL_S', 'BATCH_MAX_ITEMS', 'BATCH_CONCURRENCY', 'JWT_CLOCK_TOLERANCE_S', 'JWT_MAX_AGE_S', 'RATE_LIMIT_PER_MINUTE', 'RATE_LIMIT_PER_IP_PER_MINUTE'] as const

/** Says what is wrong with a variable without ever repeating its value (it may be a secret). */
function describeProblem (schema: { anyOf?: Array<{ const: string }>, minimum?: number, maximum?: number, pattern?: string }, value: unknown): string {
  if (value === undefined) return 'is required'
  if (schema.anyOf !== undefined) return `must be one of ${schema.anyOf.map((s) => s.const).join(', ')}`
  if (schema.minimum !== undefined) return `must be a whole number from ${schema.minimum} to ${String(schema.maximum)}`
  if (schema.pattern !== undefined) return 'is malformed'
  return 'must not be empty'
}

function checkEnvShape (env: Record<string, string | undefined>): Env {
  const known: Record<string, string> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') known[key] = value
  }
  const withDefaults = Value.Default(EnvSchema, known) as Record<string, string>
  const firstError = Value.Errors(EnvSchema, withDefaults).First()
  if (firstError !== undefined) {
    const variable = firstError.path.replace(/^\//, '')
    throw new ConfigError(variable, describeProblem(firstError.schema as Parameters<typeof describeProblem>[0], withDefaults[variable]))
  }
  for (const key of INTEGER_VARIABLES) {
    const schema = EnvSchema.properties[key]
    if (withDefaults[key] === undefined) continue
    const number = Number(withDefaults[key])
    if (number < schema.minimum || number > schema.maximum) {
      throw new ConfigError(key, describeProblem(schema, number))
    }
  }
  return withDefaults as unknown as Env
}

/** Reads `X` or `X_FILE` (never both); a file loses only its trailing newline. */
function secretFromEnvOrFile (env: Env, name: 'SYNAPSE_ADMIN_TOKEN' | 'JWT_SECRET' | 'JWT_PUBLIC_KEY'): string | undefined {
  const direct = env[name]
  const fileName = `${name}_FILE` as const
  const file = env[fileName]
  if (direct !== undefined && file !== undefined) {
    throw new ConfigError(name, `and ${fileName} are both set; set only one`)
  }
  if (file === undefined) return direct
  let content: string
  try {
    content = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(fileName, `names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  content = content.replace(/\r?\n$/, '')
  if (content === '') throw new ConfigError(fileName, 'names an empty file')
  return content
}

function list (value: string | undefined): string[] {
  if (value === undefined) return []
  return value.split(',').map((item) => item.trim()).filter((item) => item !== '')
}

/** How org tokens are verified, with the algorithms they may use (checked against the key). */
export type JwtVerification =
  | { kind: 'secret', secret: string, algorithms: string[] }
  | { kind: 'public-key', pem: string, algorithms: string[] }
  | { kind: 'jwks', url: string, algorithms: string[] }

function jwtVerification (env: Env, configuredAlgorithms: string[]): JwtVerification {
  const secret = secretFromEnvOrFile(env, 'JWT_SECRET')
  const publicKey = secretFromEnvOrFile(env, 'JWT_PUBLIC_KEY')
  const publicKeyVariable = env.JWT_PUBLIC_KEY_FILE !== undefined ? 'JWT_PUBLIC_KEY_FILE' : 'JWT_PUBLIC_KEY'
  const set = [
    secret !== undefined && (env.JWT_SECRET_FILE !== undefined ? 'JWT_SECRET_FILE' : 'JWT_SECRET'),
    publicKey !== undefined && publicKeyVariable,
    env.JWT_JWKS_URL !== undefined && 'JWT_JWKS_URL'
  ].filter((name): name is string => name !== false)
  if (set.length === 0) {
    throw new ConfigError('JWT_SECRET', 'is required (or JWT_SECRET_FILE, JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL)')
  }
  if (set.length > 1) {
    throw new ConfigError(set[1] as string, `conflicts with ${set[0] as string}; set exactly one way to verify tokens`)
  }
  if (secret !== undefined) {
    return { kind: 'secret', secret, algorithms: allowedAlgorithms(configuredAlgorithms, HMAC_ALGORITHMS, 'JWT_SECRET') }
  }
  if (publicKey !== undefined) {
    // Environment variables often carry PEM line breaks as literal \n.
    const parsed = parsePublicKeyPem(publicKey.replace(/\\n/g, '\n'), publicKeyVariable)
    return { kind: 'public-key', pem: parsed.pem, algorithms: allowedAlgorithms(configuredAlgorithms, parsed.algorithms, publicKeyVariable) }
  }
  return { kind: 'jwks', url: env.JWT_JWKS_URL as string, algorithms: allowedAlgorithms(configuredAlgorithms, ASYMMETRIC_ALGORITHMS, 'JWT_JWKS_URL') }
}

/**
 * TRUST_PROXY: unset or `false` trusts no proxy (the client address is the peer's); `true`
 * trusts every hop; a number trusts that many hops; anything else is a comma list of proxy
 * addresses or CIDRs. Only trusted proxies' X-Forwarded-For reaches audit entries and limits.
 */
function trustProxy (value: string | undefined): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (value === undefined || value === 'false') return false
  if (value === 'true') return true
  if (/^[0-9]{1,2}$/.test(value)) {
    const hops = Number(value)
    return (_address, hop) => hop < hops
  }
  const list = value.split(',').map((item) => item.trim()).filter((item) => item !== '')
  if (list.length === 0 || list.some((item) => !/^[0-9a-fA-F.:/]+$/.test(item))) {
    throw new ConfigError('TRUST_PROXY', 'must be true, false, a hop count, or a comma list of addresses or CIDRs')
  }
  return list
}

export function loadConfig (rawEnv: Record<string, string | undefined>) {
  const env = checkEnvShape(rawEnv)
  if (!isServerName(env.SYNAPSE_SERVER_NAME)) {
    throw new ConfigError('SYNAPSE_SERVER_NAME', 'is not a valid Matrix server name (e.g. example.com)')
  }
  const adminToken = secretFromEnvOrFile(env, 'SYNAPSE_ADMIN_TOKEN')
  if (adminToken === undefined) {
    throw new ConfigError('SYNAPSE_ADMIN_TOKEN', 'is required (or SYNAPSE_ADMIN_TOKEN_FILE)')
  }
  if (/[\s]/.test(adminToken)) {
    throw new ConfigError(env.SYNAPSE_ADMIN_TOKEN_FILE !== undefined ? 'SYNAPSE_ADMIN_TOKEN_FILE' : 'SYNAPSE_ADMIN_TOKEN', 'must not contain white space')
  }
  const joinRoles = list(env.JOIN_ROLES)
  if (joinRoles.length === 0) throw new ConfigError('JOIN_ROLES', 'must name at least one role')
  const allowedOrgs = list(env.ALLOWED_ORGS)
  if (env.ALLOWED_ORGS !== undefined && allowedOrgs.length === 0) {
    throw new ConfigError('ALLOWED_ORGS', 'must name at least one org')
  }
  const algorithms = list(env.JWT_ALGORITHMS)
  if (env.JWT_ALGORITHMS !== undefined && algorithms.length === 0) {
    throw new ConfigError('JWT_ALGORITHMS', 'must name at least one algorithm')
  }

  if (Number(env.SYNAPSE_TIMEOUT_MS) >= Number(env.SHUTDOWN_GRACE_MS)) {
    throw new ConfigError('SYNAPSE_TIMEOUT_MS', `(${env.SYNAPSE_TIMEOUT_MS}) must be shorter than SHUTDOWN_GRACE_MS (${env.SHUTDOWN_GRACE_MS}), so a request's Synapse work ends before the shutdown grace period does`)
  }
  let auditChainKey: Buffer | undefined
  if (env.AUDIT_CHAIN_KEY_FILE !== undefined) {
    try {
      auditChainKey = readFileSync(env.AUDIT_CHAIN_KEY_FILE)
    } catch (err) {
      throw new ConfigError('AUDIT_CHAIN_KEY_FILE', `names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    if (auditChainKey.length < 16) throw new ConfigError('AUDIT_CHAIN_KEY_FILE', 'names a file with fewer than 16 bytes; use a long random key')
  }

  if (env.LOG_PRETTY === 'true') {
    try {
      createRequire(import.meta.url).resolve('pino-pretty')
    } catch {
      throw new ConfigError('LOG_PRETTY', 'needs the pino-pretty package, a development dependency (npm install); leave it off in production')
    }
  }

  return {
    host: env.HOST,
    port: Number(env.PORT),
    logLevel: env.LOG_LEVEL,
    logPretty: env.LOG_PRETTY === 'true',
    docsEnabled: env.DOCS_ENABLED === 'true',
    metricsEnabled: env.METRICS_ENABLED === 'true',
    metricsPort: env.METRICS_PORT === undefined ? undefined : Number(env.METRICS_PORT),
    trustProxy: trustProxy(env.TRUST_PROXY),
    auditLogFile: env.AUDIT_LOG_FILE,
    auditChainKey,
    policyFile: env.POLICY_FILE,
    requireReason: env.REQUIRE_REASON === 'true',
    shutdownGraceMs: Number(env.SHUTDOWN_GRACE_MS),
    idempotencyTtlS: Number(env.IDEMPOTENCY_TTL_S),
    batchMaxItems: Number(env.BATCH_MAX_ITEMS),
    batchConcurrency: Number(env.BATCH_CONCURRENCY),
    redisUrl: env.REDIS_URL,
    synapse: {
      url: env.SYNAPSE_URL.replace(/\/+$/, ''),
      adminToken,
      serverName: env.SYNAPSE_SERVER_NAME,
      timeoutMs: Number(env.SYNAPSE_TIMEOUT_MS),
      maxConcurrency: Number(env.SYNAPSE_MAX_CONCURRENCY),
      queueTimeoutMs: Number(env.SYNAPSE_QUEUE_TIMEOUT_MS)
    },
    jwt: {
      verification: jwtVerification(env, algorithms),
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
      clockToleranceS: Number(env.JWT_CLOCK_TOLERANCE_S),
      maxAgeS: Number(env.JWT_MAX_AGE_S),
      rolesClaim: env.JWT_ROLES_CLAIM,
      orgClaim: env.JWT_ORG_CLAIM
    },
    allowedOrgs,
    joinRoles,
    rateLimitPerMinute: Number(env.RATE_LIMIT_PER_MINUTE),
    rateLimitPerIpPerMinute: Number(env.RATE_LIMIT_PER_IP_PER_MINUTE),
    allowRemoteRooms: env.ALLOW_REMOTE_ROOMS === 'true'
  }
}

export type Config = ReturnType<typeof loadConfig>
