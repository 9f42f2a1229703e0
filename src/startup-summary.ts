import type { Config } from './config.js'

/** A URL as it may be logged: without user, password, query or fragment (any of them may be a secret). */
export function redactedUrl (value: string): string {
  try {
    const url = new URL(value)
    url.username = ''
    url.password = ''
    url.search = ''
    url.hash = ''
    return url.toString().replace(/\/$/, value.endsWith('/') ? '/' : '')
  } catch {
    return '(not a URL)'
  }
}

/**
 * What this replica runs with, logged once at start (info) so that a wrong setting shows
 * before the first request does: how tokens are verified, where Synapse and the audit log
 * are, which policy applies, and the limits. Never a secret: no token, key, secret or password.
 */
export function startupSummary (config: Config) {
  const { verification } = config.jwt
  return {
    verification: {
      mode: verification.kind === 'jwks' ? 'JWKS' : verification.kind === 'secret' ? 'HMAC secret' : 'public key',
      ...(verification.kind === 'jwks' ? { jwks_url: redactedUrl(verification.url) } : {}),
      algorithms: verification.algorithms,
      issuer: config.jwt.issuer ?? 'any (JWT_ISSUER unset)',
      audience: config.jwt.audience ?? 'any (JWT_AUDIENCE unset)',
      roles_claim: config.jwt.rolesClaim,
      org_claim: config.jwt.orgClaim,
      allowed_orgs: config.allowedOrgs.length === 0 ? 'any (ALLOWED_ORGS unset)' : config.allowedOrgs
    },
    // Not known yet: Synapse is asked once listening, and its answer is logged on a line of its own.
    synapse: { url: redactedUrl(config.synapse.url), server_name: config.synapse.serverName, version: 'asked once listening: see the "Synapse version" line and /readyz' },
    audit: {
      destination: config.auditLogFile ?? 'standard output',
      chained: config.auditChainKey !== undefined,
      checkpoints: config.auditCheckpoint === undefined ? 'off' : `signed, to ${config.auditCheckpoint.file} every ${config.auditCheckpoint.intervalMs / 1000} s while the chain grows, and at shutdown`
    },
    policy: config.policyFile ?? `implicit (JOIN_ROLES: ${config.joinRoles.join(', ')})`,
    require_reason: config.requireReason,
    shared_state: config.redisUrl === undefined ? 'none: limits and idempotency records are per replica' : redactedUrl(config.redisUrl),
    limits: {
      rate_limit_per_minute: config.rateLimitPerMinute,
      rate_limit_per_ip_per_minute: config.rateLimitPerIpPerMinute,
      synapse_timeout_ms: config.synapse.timeoutMs,
      synapse_max_concurrency: config.synapse.maxConcurrency,
      synapse_queue_timeout_ms: config.synapse.queueTimeoutMs,
      synapse_deactivate_timeout_ms: config.synapse.deactivateTimeoutMs,
      jwt_max_age_s: config.jwt.maxAgeS,
      jwt_clock_tolerance_s: config.jwt.clockToleranceS,
      batch_max_items: config.batchMaxItems,
      batch_concurrency: config.batchConcurrency,
      idempotency_ttl_s: config.idempotencyTtlS,
      shutdown_grace_ms: config.shutdownGraceMs
    },
    allow_remote_rooms: config.allowRemoteRooms,
    metrics: config.metricsEnabled ? (config.metricsPort === undefined ? 'on /metrics' : `on port ${config.metricsPort}`) : 'off',
    docs: config.docsEnabled,
    public_url: config.publicUrl ?? 'the host of each request (PUBLIC_URL unset)'
  }
}
