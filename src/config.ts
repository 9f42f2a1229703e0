import { createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { isServerName } from './matrix-ids.js'
import { ConfigError, type ConfigProblem } from './config-error.js'
import { notAnEd25519Key } from './audit/checkpoint.js'
import { ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS, allowedAlgorithms, parsePublicKeyPem } from './auth/keys.js'
import type { JwtSettings, JwtVerification } from './auth/options.js'

export { ConfigError, type ConfigProblem }

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
  SYNAPSE_DEACTIVATE_TIMEOUT_MS: Integer({ minimum: 100, maximum: 3600000, default: '120000' }),
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
  AUDIT_CHECKPOINT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  AUDIT_CHECKPOINT_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  AUDIT_CHECKPOINT_INTERVAL_S: Integer({ minimum: 1, maximum: 86400, default: '60' }),
  POLICY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  REQUIRE_REASON: Bool('false'),
  IDEMPOTENCY_TTL_S: Integer({ minimum: 1, maximum: 31536000, default: '86400' }),
  IDEMPOTENCY_MAX_BYTES: Integer({ minimum: 1024, maximum: 1099511627776, default: '67108864' }),
  APPROVAL_TTL_S: Integer({ minimum: 60, maximum: 31536000, default: '86400' }),
  APPROVAL_MAX_ENTRIES: Integer({ minimum: 1, maximum: 1000000, default: '10000' }),
  APPROVAL_MAX_BYTES: Integer({ minimum: 65536, maximum: 1073741824, default: '16777216' }),
  BATCH_MAX_ITEMS: Integer({ minimum: 1, maximum: 10000, default: '100' }),
  BATCH_CONCURRENCY: Integer({ minimum: 1, maximum: 256, default: '4' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^(redis|rediss|valkey|valkeys)://[^\\s]+$' })),
  REDIS_URL_FILE: Type.Optional(Type.String({ minLength: 1 })),
  DOCS_ENABLED: Bool('true'),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$' })),
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

const INTEGER_VARIABLES = ['PORT', 'METRICS_PORT', 'SYNAPSE_TIMEOUT_MS', 'SYNAPSE_MAX_CONCURRENCY', 'SYNAPSE_QUEUE_TIMEOUT_MS', 'SYNAPSE_DEACTIVATE_TIMEOUT_MS', 'SHUTDOWN_GRACE_MS', 'IDEMPOTENCY_TTL_S', 'IDEMPOTENCY_MAX_BYTES', 'BATCH_MAX_ITEMS', 'BATCH_CONCURRENCY', 'JWT_CLOCK_TOLERANCE_S', 'JWT_MAX_AGE_S', 'RATE_LIMIT_PER_MINUTE', 'RATE_LIMIT_PER_IP_PER_MINUTE', 'AUDIT_CHECKPOINT_INTERVAL_S', 'APPROVAL_TTL_S', 'APPROVAL_MAX_ENTRIES', 'APPROVAL_MAX_BYTES'] as const

/** What a well-formed value looks like, for the variables whose form is not a number or a choice. */
const EXAMPLES: Partial<Record<keyof Env, string>> = {
  SYNAPSE_URL: 'http://127.0.0.1:8008',
  SYNAPSE_SERVER_NAME: 'example.com',
  JWT_JWKS_URL: 'https://idp.example.com/realms/acme/protocol/openid-connect/certs',
  JWT_ROLES_CLAIM: 'realm_access.roles',
  JWT_ORG_CLAIM: 'org',
  REDIS_URL: 'redis://redis:6379',
  HOST: '127.0.0.1',
  JOIN_ROLES: 'matrix-admin,helpdesk',
  ALLOWED_ORGS: 'acme,partner',
  JWT_ALGORITHMS: 'RS256,ES256',
  JWT_ISSUER: 'https://idp.example.com/realms/acme',
  JWT_AUDIENCE: 'synapse-admin-gateway',
  PUBLIC_URL: 'https://gateway.example.com'
}

/** Says what is wrong with a variable without ever repeating its value (it may be a secret). */
function describeProblem (variable: string, schema: { anyOf?: Array<{ const: string }>, minimum?: number, maximum?: number, pattern?: string }, value: unknown): string {
  const example = EXAMPLES[variable as keyof Env]
  if (value === undefined) return example === undefined ? 'is required' : `is required (e.g. ${variable}=${example})`
  if (schema.anyOf !== undefined) return `must be one of ${schema.anyOf.map((s) => s.const).join(', ')}`
  if (schema.minimum !== undefined) return `must be a whole number from ${schema.minimum} to ${String(schema.maximum)}`
  if (schema.pattern !== undefined) return example === undefined ? 'is malformed' : `must look like ${example}`
  return 'must not be empty'
}

/**
 * Checks every variable against the schema and returns the values with defaults. A variable
 * with a problem is listed in `problems` and falls back to its default (or unset), so the
 * later checks can go on and report their own problems in the same run.
 */
function checkEnvShape (env: Record<string, string | undefined>, problems: ConfigProblem[]): Env {
  const known: Record<string, string> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') known[key] = value
  }
  const withDefaults = Value.Default(EnvSchema, structuredClone(known)) as Record<string, string>
  const flagged = new Set<string>()
  for (const error of Value.Errors(EnvSchema, withDefaults)) {
    const variable = error.path.replace(/^\//, '').split('/')[0] as string
    if (flagged.has(variable)) continue
    flagged.add(variable)
    problems.push({ variable, problem: describeProblem(variable, error.schema as Parameters<typeof describeProblem>[1], withDefaults[variable]) })
  }
  for (const key of INTEGER_VARIABLES) {
    const schema = EnvSchema.properties[key]
    if (withDefaults[key] === undefined || flagged.has(key)) continue
    const number = Number(withDefaults[key])
    if (number < schema.minimum || number > schema.maximum) {
      flagged.add(key)
      problems.push({ variable: key, problem: describeProblem(key, schema, number) })
    }
  }
  const order = Object.keys(EnvSchema.properties)
  problems.sort((a, b) => order.indexOf(a.variable) - order.indexOf(b.variable))
  const defaults = Value.Default(EnvSchema, {}) as Record<string, string>
  for (const variable of flagged) {
    if (defaults[variable] === undefined) Reflect.deleteProperty(withDefaults, variable)
    else withDefaults[variable] = defaults[variable]
  }
  return withDefaults as unknown as Env
}

/** AUDIT_CHECKPOINT_FILE and its Ed25519 signing key: both or neither, on an audit file. */
function auditCheckpointSettings (env: Env): { file: string, privateKey: KeyObject, intervalMs: number } | undefined {
  const { AUDIT_CHECKPOINT_FILE: file, AUDIT_CHECKPOINT_KEY_FILE: keyFile } = env
  if (file === undefined && keyFile === undefined) return undefined
  if (keyFile === undefined) throw new ConfigError('AUDIT_CHECKPOINT_KEY_FILE', 'is required with AUDIT_CHECKPOINT_FILE: the Ed25519 private key that signs the checkpoints (openssl genpkey -algorithm ed25519 -out checkpoint.key)')
  if (file === undefined) throw new ConfigError('AUDIT_CHECKPOINT_FILE', 'is required with AUDIT_CHECKPOINT_KEY_FILE: the file the signed checkpoints are appended to')
  if (env.AUDIT_LOG_FILE === undefined) throw new ConfigError('AUDIT_CHECKPOINT_FILE', 'needs AUDIT_LOG_FILE: a chain on standard output starts again with every process, so no checkpoint could be matched to it')
  let pem: Buffer
  try {
    pem = readFileSync(keyFile)
  } catch (err) {
    throw new ConfigError('AUDIT_CHECKPOINT_KEY_FILE', `names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(pem)
  } catch {
    throw new ConfigError('AUDIT_CHECKPOINT_KEY_FILE', 'must hold a PEM private key (openssl genpkey -algorithm ed25519 -out checkpoint.key)')
  }
  const wrong = notAnEd25519Key(privateKey)
  if (wrong !== undefined) throw new ConfigError('AUDIT_CHECKPOINT_KEY_FILE', `holds ${wrong}; make one with openssl genpkey -algorithm ed25519 -out checkpoint.key`)
  return { file, privateKey, intervalMs: Number(env.AUDIT_CHECKPOINT_INTERVAL_S) * 1000 }
}

/** Prefixes of the variables this service reads: an unknown one with them is likely a typo. */
const OUR_PREFIXES = ['SYNAPSE_', 'JWT_', 'AUDIT_', 'RATE_LIMIT_', 'POLICY_', 'REDIS_', 'BATCH_', 'IDEMPOTENCY_', 'APPROVAL_', 'SHUTDOWN_', 'METRICS_', 'LOG_', 'DOCS_', 'TRUST_', 'ALLOW_', 'ALLOWED_', 'REQUIRE_', 'JOIN_']

function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length] as number
}

/** `JWT_AUDIANCE: unknown variable; did you mean JWT_AUDIENCE?` for each unknown variable with our prefixes. */
export function unknownVariableWarnings (env: Record<string, string | undefined>): string[] {
  const known = Object.keys(EnvSchema.properties)
  return Object.keys(env)
    .filter((name) => !known.includes(name) && OUR_PREFIXES.some((prefix) => name.startsWith(prefix)))
    .sort()
    .map((name) => {
      const closest = known.map((candidate) => ({ candidate, distance: editDistance(name, candidate) }))
        .sort((a, b) => a.distance - b.distance)[0]
      const suggestion = closest !== undefined && closest.distance <= Math.max(2, Math.floor(name.length / 4)) ? `; did you mean ${closest.candidate}?` : ''
      return `${name.slice(0, 64)}: unknown variable${suggestion}`
    })
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

/**
 * REDIS_URL or REDIS_URL_FILE (never both): a file keeps a password in the URL out of the
 * environment. Its content is checked like REDIS_URL, and never repeated in an error.
 */
function redisUrlFrom (env: Env): string | undefined {
  if (env.REDIS_URL !== undefined && env.REDIS_URL_FILE !== undefined) {
    throw new ConfigError('REDIS_URL', 'and REDIS_URL_FILE are both set; set only one')
  }
  if (env.REDIS_URL_FILE === undefined) return env.REDIS_URL
  let content: string
  try {
    content = readFileSync(env.REDIS_URL_FILE, 'utf8').trim()
  } catch (err) {
    throw new ConfigError('REDIS_URL_FILE', `names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  if (!new RegExp(EnvSchema.properties.REDIS_URL.pattern as string).test(content)) {
    throw new ConfigError('REDIS_URL_FILE', `names a file that does not hold one URL like ${EXAMPLES.REDIS_URL ?? ''}`)
  }
  return content
}

function list (value: string | undefined): string[] {
  if (value === undefined) return []
  return value.split(',').map((item) => item.trim()).filter((item) => item !== '')
}

/** How org tokens are verified, with the algorithms they may use (checked against the key). */
export type { JwtVerification }

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

/**
 * The typed configuration, or a ConfigError listing every problem found (one line each).
 * `warnings` (unknown variables with our prefixes) are for the caller to log.
 */
export function loadConfig (rawEnv: Record<string, string | undefined>) {
  const problems: ConfigProblem[] = []
  const env = checkEnvShape(rawEnv, problems)
  const flagged = new Set(problems.map((item) => item.variable))
  /** Runs one check; its ConfigError joins the list unless its variable is already at fault. */
  function check<T> (fn: () => T): T | undefined {
    try {
      return fn()
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      for (const item of error.problems) {
        if (!flagged.has(item.variable)) problems.push(item)
        flagged.add(item.variable)
      }
      return undefined
    }
  }

  check(() => {
    if (env.SYNAPSE_SERVER_NAME !== undefined && !isServerName(env.SYNAPSE_SERVER_NAME)) {
      throw new ConfigError('SYNAPSE_SERVER_NAME', 'is not a valid Matrix server name (e.g. example.com)')
    }
  })
  const adminToken = check(() => {
    const token = secretFromEnvOrFile(env, 'SYNAPSE_ADMIN_TOKEN')
    if (token === undefined) {
      throw new ConfigError('SYNAPSE_ADMIN_TOKEN', 'is required (or SYNAPSE_ADMIN_TOKEN_FILE): the access token of a Synapse server admin, e.g. syt_...')
    }
    if (/[\s]/.test(token)) {
      throw new ConfigError(env.SYNAPSE_ADMIN_TOKEN_FILE !== undefined ? 'SYNAPSE_ADMIN_TOKEN_FILE' : 'SYNAPSE_ADMIN_TOKEN', 'must not contain white space')
    }
    return token
  })
  const joinRoles = list(env.JOIN_ROLES)
  check(() => { if (joinRoles.length === 0 && !flagged.has('JOIN_ROLES')) throw new ConfigError('JOIN_ROLES', 'must name at least one role (e.g. JOIN_ROLES=matrix-admin,helpdesk)') })
  const allowedOrgs = list(env.ALLOWED_ORGS)
  check(() => {
    if (env.ALLOWED_ORGS !== undefined && allowedOrgs.length === 0) throw new ConfigError('ALLOWED_ORGS', 'must name at least one org (e.g. ALLOWED_ORGS=acme,partner)')
  })
  const algorithms = list(env.JWT_ALGORITHMS)
  check(() => {
    if (env.JWT_ALGORITHMS !== undefined && algorithms.length === 0) throw new ConfigError('JWT_ALGORITHMS', 'must name at least one algorithm (e.g. JWT_ALGORITHMS=RS256)')
  })
  const verification = check(() => jwtVerification(env, algorithms))
  const trustProxySetting = check(() => trustProxy(env.TRUST_PROXY))

  check(() => {
    if (Number(env.SYNAPSE_TIMEOUT_MS) >= Number(env.SHUTDOWN_GRACE_MS)) {
      throw new ConfigError('SYNAPSE_TIMEOUT_MS', `(${env.SYNAPSE_TIMEOUT_MS}) must be shorter than SHUTDOWN_GRACE_MS (${env.SHUTDOWN_GRACE_MS}), so a request's Synapse work ends before the shutdown grace period does`)
    }
  })
  const auditChainKey = check(() => {
    if (env.AUDIT_CHAIN_KEY_FILE === undefined) return undefined
    let key: Buffer
    try {
      key = readFileSync(env.AUDIT_CHAIN_KEY_FILE)
    } catch (err) {
      throw new ConfigError('AUDIT_CHAIN_KEY_FILE', `names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    if (key.length < 16) throw new ConfigError('AUDIT_CHAIN_KEY_FILE', 'names a file with fewer than 16 bytes; use a long random key (e.g. head -c 32 /dev/urandom > audit-chain.key)')
    return key
  })

  const auditCheckpoint = check(() => auditCheckpointSettings(env))
  const redisUrl = check(() => redisUrlFrom(env))

  check(() => {
    if (env.LOG_PRETTY !== 'true') return
    try {
      createRequire(import.meta.url).resolve('pino-pretty')
    } catch {
      throw new ConfigError('LOG_PRETTY', 'needs the pino-pretty package, a development dependency (npm install); leave it off in production')
    }
  })

  if (problems.length > 0) throw new ConfigError(problems)
  const synapseUrl = env.SYNAPSE_URL
  return {
    host: env.HOST,
    port: Number(env.PORT),
    logLevel: env.LOG_LEVEL,
    logPretty: env.LOG_PRETTY === 'true',
    docsEnabled: env.DOCS_ENABLED === 'true',
    metricsEnabled: env.METRICS_ENABLED === 'true',
    metricsPort: env.METRICS_PORT === undefined ? undefined : Number(env.METRICS_PORT),
    trustProxy: trustProxySetting as Exclude<typeof trustProxySetting, undefined>,
    auditLogFile: env.AUDIT_LOG_FILE,
    auditChainKey,
    auditCheckpoint,
    policyFile: env.POLICY_FILE,
    requireReason: env.REQUIRE_REASON === 'true',
    shutdownGraceMs: Number(env.SHUTDOWN_GRACE_MS),
    idempotencyTtlS: Number(env.IDEMPOTENCY_TTL_S),
    idempotencyMaxBytes: Number(env.IDEMPOTENCY_MAX_BYTES),
    approvals: { ttlS: Number(env.APPROVAL_TTL_S), maxEntries: Number(env.APPROVAL_MAX_ENTRIES), maxBytes: Number(env.APPROVAL_MAX_BYTES) },
    batchMaxItems: Number(env.BATCH_MAX_ITEMS),
    batchConcurrency: Number(env.BATCH_CONCURRENCY),
    redisUrl,
    publicUrl: env.PUBLIC_URL?.replace(/\/+$/, ''),
    synapse: {
      url: synapseUrl.replace(/\/+$/, ''),
      adminToken: adminToken as string,
      serverName: env.SYNAPSE_SERVER_NAME,
      timeoutMs: Number(env.SYNAPSE_TIMEOUT_MS),
      maxConcurrency: Number(env.SYNAPSE_MAX_CONCURRENCY),
      queueTimeoutMs: Number(env.SYNAPSE_QUEUE_TIMEOUT_MS),
      /** user.deactivate's own timeout: Synapse may take minutes for a user in many rooms. */
      deactivateTimeoutMs: Number(env.SYNAPSE_DEACTIVATE_TIMEOUT_MS)
    },
    jwt: {
      verification: verification as JwtVerification,
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
      clockToleranceS: Number(env.JWT_CLOCK_TOLERANCE_S),
      maxAgeS: Number(env.JWT_MAX_AGE_S),
      rolesClaim: env.JWT_ROLES_CLAIM,
      orgClaim: env.JWT_ORG_CLAIM
    } satisfies JwtSettings,
    allowedOrgs,
    joinRoles,
    rateLimitPerMinute: Number(env.RATE_LIMIT_PER_MINUTE),
    rateLimitPerIpPerMinute: Number(env.RATE_LIMIT_PER_IP_PER_MINUTE),
    allowRemoteRooms: env.ALLOW_REMOTE_ROOMS === 'true',
    /** Unknown variables with our prefixes (likely typos), for the caller to log at warn. */
    warnings: unknownVariableWarnings(rawEnv)
  }
}

export type Config = ReturnType<typeof loadConfig>
