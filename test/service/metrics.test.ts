/**
 * GET /metrics: what operators alert on is there from the first scrape — build info,
 * readiness, breaker state, requests in flight and queued towards Synapse, and counters at
 * zero for the known labels.
 */
import Fastify from 'fastify'
import t from 'tap'
import { request } from 'undici'
import { createMetrics, metricsRoute } from '../../src/metrics.js'
import { startHarness } from '../helpers/harness.js'

const { version } = (await import('../../package.json', { with: { type: 'json' } })).default

t.test('the gauges read their sources at scrape time', async (t) => {
  let inFlight = 3
  let ready = false
  let circuit: 0 | 1 | 2 = 1
  const metrics = createMetrics({ synapseInFlight: () => inFlight, synapseQueued: () => 7, circuitState: () => circuit, ready: () => ready })
  const app = Fastify()
  app.route(metricsRoute(metrics.registry))
  t.after(async () => { await app.close() })
  const scrape = async () => (await app.inject({ url: '/metrics' })).body
  let text = await scrape()
  t.match(text, /^gateway_synapse_requests_in_flight 3$/m)
  t.match(text, /^gateway_synapse_requests_queued 7$/m)
  t.match(text, /^gateway_synapse_circuit_state 1$/m)
  t.match(text, /^gateway_ready 0$/m)
  inFlight = 0
  ready = true
  circuit = 2
  text = await scrape()
  t.match(text, /^gateway_synapse_requests_in_flight 0$/m)
  t.match(text, /^gateway_synapse_circuit_state 2$/m)
  t.match(text, /^gateway_ready 1$/m)
  metrics.policyDecisions.inc({ rule: 'helpdesk-join', effect: 'allow' })
  t.match(await scrape(), /^gateway_policy_decisions_total\{rule="helpdesk-join",effect="allow"\} 1$/m)
})

t.test('the gateway\'s /metrics has build info and zero counters before any traffic', async (t) => {
  const h = await startHarness(t)
  const response = await request(`${h.url}/metrics`)
  const text = await response.body.text()
  t.equal(response.statusCode, 200)
  t.match(text, new RegExp(`^gateway_build_info\\{version="${version.replace(/\./g, '\\.')}",node="${process.versions.node.replace(/\./g, '\\.')}"\\} 1$`, 'm'))
  for (const action of ['room.join', 'room.remove', 'room.members.read', 'room.promote', 'user.read']) {
    for (const outcome of ['success', 'denied', 'invalid', 'failed', 'unknown']) {
      t.match(text, new RegExp(`^gateway_actions_total\\{action="${action.replace('.', '\\.')}",outcome="${outcome}",code="none"\\} 0$`, 'm'), `${action} ${outcome} at zero`)
    }
  }
  t.match(text, /^gateway_rate_limited_total\{limit="ip"\} 0$/m)
  t.match(text, /^gateway_rate_limited_total\{limit="caller"\} 0$/m)
  t.match(text, /^gateway_jwks_fetches_total\{result="ok"\} 0$/m)
  t.match(text, /^gateway_jwks_fetches_total\{result="failed"\} 0$/m)
  for (const name of ['gateway_ready', 'gateway_synapse_circuit_state', 'gateway_synapse_requests_in_flight', 'gateway_synapse_requests_queued']) {
    t.match(text, new RegExp(`^# TYPE ${name} gauge$`, 'm'), `${name} is defined`)
  }
})
