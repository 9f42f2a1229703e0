import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { ACTION_NAMES } from './actions/catalog.js'
import type { Outcome } from './errors.js'

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

/** What the gauges read when Prometheus scrapes; the app passes in the functions it has. */
export interface MetricSources {
  /** Requests to Synapse in flight right now. */
  synapseInFlight?: () => number
  /** Requests waiting for a free slot towards Synapse (SYNAPSE_MAX_CONCURRENCY). */
  synapseQueued?: () => number
  /** The Synapse circuit breaker, worst of all kinds of call: 0 closed, 1 open, 2 half-open. */
  circuitState?: () => 0 | 1 | 2
  /** The breaker per kind of call seen so far (call names are a fixed set: bounded labels). */
  callCircuitStates?: () => Iterable<[string, 'closed' | 'open' | 'half_open']>
  /** Whether /readyz would answer 200 (its last known answer). */
  ready?: () => boolean
}

/** Action names and outcomes known in advance: their counters exist at zero (with code "none") from the start. */
export const KNOWN_ACTIONS = ACTION_NAMES
const OUTCOMES: Outcome[] = ['success', 'denied', 'invalid', 'failed', 'unknown']

/**
 * Prometheus metrics, one registry per app. Labels have bounded values only (routes as
 * declared, codes, outcomes, call names): never a user, room, token or caller. Counters
 * operators alert on start at zero for their known labels, so `rate()` and absence alerts
 * work before the first failure.
 */
export function createMetrics (sources: MetricSources = {}) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const gauge = (name: string, help: string, read: (() => number) | undefined) => new Gauge({
    name,
    help,
    registers,
    ...(read === undefined ? {} : { collect () { this.set(read()) } })
  })
  const actions = new Counter({ name: 'gateway_actions_total', help: 'Action attempts by action, outcome and code', labelNames: ['action', 'outcome', 'code'] as const, registers })
  for (const action of KNOWN_ACTIONS) {
    for (const outcome of OUTCOMES) actions.inc({ action, outcome, code: 'none' }, 0)
  }
  const rateLimited = new Counter({ name: 'gateway_rate_limited_total', help: 'Requests refused by the gateway\'s rate limits, by limit (ip, caller)', labelNames: ['limit'] as const, registers })
  for (const limit of ['ip', 'caller']) rateLimited.inc({ limit }, 0)
  const jwksFetches = new Counter({ name: 'gateway_jwks_fetches_total', help: 'JWKS fetches by result', labelNames: ['result'] as const, registers })
  for (const result of ['ok', 'failed']) jwksFetches.inc({ result }, 0)
  const buildInfo = new Gauge({ name: 'gateway_build_info', help: 'Always 1; the labels say which version runs on which Node', labelNames: ['version', 'node'] as const, registers })
  buildInfo.set({ version, node: process.versions.node }, 1)
  const ready = sources.ready
  return {
    registry,
    actions,
    rateLimited,
    jwksFetches,
    buildInfo,
    ready: gauge('gateway_ready', 'Whether this replica is ready (1) or not (0), as /readyz last answered', ready === undefined ? undefined : () => ready() ? 1 : 0),
    circuitState: gauge('gateway_synapse_circuit_state', 'Synapse circuit breaker, worst of all kinds of call: 0 closed, 1 open (calls refused at once), 2 half-open (one trial call)', sources.circuitState),
    callCircuitState: callCircuitGauge(registers, sources.callCircuitStates),
    synapseInFlight: gauge('gateway_synapse_requests_in_flight', 'Requests to Synapse in flight', sources.synapseInFlight),
    synapseQueued: gauge('gateway_synapse_requests_queued', 'Requests waiting for a free slot towards Synapse (SYNAPSE_MAX_CONCURRENCY)', sources.synapseQueued),
    policyDecisions: new Counter({ name: 'gateway_policy_decisions_total', help: 'Policy decisions by rule and effect (allow, deny)', labelNames: ['rule', 'effect'] as const, registers }),
    httpRequests: new Counter({ name: 'gateway_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'] as const, registers }),
    synapseDuration: new Histogram({
      name: 'gateway_synapse_request_duration_seconds',
      help: 'Duration of calls to Synapse that got an answer, by call',
      labelNames: ['call'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers
    }),
    synapseErrors: new Counter({ name: 'gateway_synapse_errors_total', help: 'Calls to Synapse that failed, by call and kind (unavailable, timeout, broken, saturated, circuit_open, http_5xx)', labelNames: ['call', 'kind'] as const, registers }),
    auditWriteFailures: new Counter({ name: 'gateway_audit_write_failures_total', help: 'Audit entries that could not be written to the audit log', registers })
  }
}

const CIRCUIT_VALUES = { closed: 0, open: 1, half_open: 2 } as const

function callCircuitGauge (registers: Registry[], read: MetricSources['callCircuitStates']) {
  return new Gauge({
    name: 'gateway_synapse_call_circuit_state',
    help: 'Synapse circuit breaker per kind of call (join, kick, room_state, …): 0 closed, 1 open, 2 half-open',
    labelNames: ['call'] as const,
    registers,
    ...(read === undefined
      ? {}
      : {
          collect () {
            for (const [call, state] of read()) this.set({ call }, CIRCUIT_VALUES[state])
          }
        })
  })
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
