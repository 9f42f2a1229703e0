import Fastify from 'fastify'
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * Prometheus metrics, one registry per app. Labels have bounded values only (routes as
 * declared, codes, outcomes, call names): never a user, room, token or caller.
 */
export function createMetrics () {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    httpRequests: new Counter({ name: 'gateway_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'] as const, registers }),
    actions: new Counter({ name: 'gateway_actions_total', help: 'Action attempts by action, outcome and code', labelNames: ['action', 'outcome', 'code'] as const, registers }),
    synapseDuration: new Histogram({
      name: 'gateway_synapse_request_duration_seconds',
      help: 'Duration of calls to Synapse that got an answer, by call',
      labelNames: ['call'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers
    }),
    synapseErrors: new Counter({ name: 'gateway_synapse_errors_total', help: 'Calls to Synapse that failed, by call and kind (unavailable, timeout, broken, saturated, circuit_open, http_5xx)', labelNames: ['call', 'kind'] as const, registers }),
    jwksFetches: new Counter({ name: 'gateway_jwks_fetches_total', help: 'JWKS fetches by result', labelNames: ['result'] as const, registers }),
    auditWriteFailures: new Counter({ name: 'gateway_audit_write_failures_total', help: 'Audit entries that could not be written to the audit log', registers }),
    policyDecisions: new Counter({ name: 'gateway_policy_decisions_total', help: 'Policy decisions by deciding rule and effect', labelNames: ['rule', 'effect'] as const, registers }),
    rateLimited: new Counter({ name: 'gateway_rate_limited_total', help: 'Requests refused by the gateway\'s rate limits, by limit (ip, caller)', labelNames: ['limit'] as const, registers })
  }
}

export type Metrics = ReturnType<typeof createMetrics>

/** `GET /metrics` in Prometheus text format; used on the main port or on METRICS_PORT. */
export function metricsRoute (registry: Registry) {
  return {
    method: 'GET' as const,
    url: '/metrics',
    schema: { hide: true },
    handler: async (_request: unknown, reply: { type: (value: string) => unknown }) => {
      reply.type(registry.contentType)
      return await registry.metrics()
    }
  }
}

/** A separate listener for metrics only (METRICS_PORT), so they need not be exposed with the API. */
export function buildMetricsServer (registry: Registry) {
  const server = Fastify({ logger: false })
  server.route(metricsRoute(registry))
  return server
}
