import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { buildMetricsServer } from './metrics.js'
import { PolicyError } from './policy/index.js'

/** Reads the environment, listens, and shuts down gracefully. Nothing else. */
let config
let app
try {
  config = loadConfig(process.env)
  app = await buildApp(config, { readSynapseVersionAtStart: true })
} catch (error) {
  if (!(error instanceof ConfigError) && !(error instanceof PolicyError)) throw error
  process.stderr.write(`${error.message}\n`)
  process.exit(1)
}
const metricsServer = config.metricsEnabled && config.metricsPort !== undefined ? buildMetricsServer(app.metrics.registry) : undefined

// SIGHUP is logrotate's and the operator's "reload", not a shutdown: reopen the audit file, re-read the policy.
process.on('SIGHUP', () => { app.reload() })

// In-flight requests finish (their Synapse work ends within SYNAPSE_TIMEOUT_MS, shorter than the
// grace period), new ones get 503, then the Synapse pool and audit file close. Attempts still
// open when the grace period ends get their `unknown` result, then the `stop` record, before the process exits.
closeWithGrace({
  delay: config.shutdownGraceMs,
  skip: ['SIGHUP'],
  onTimeout: () => {
    const abandoned = app.abandonOpenAttempts()
    // close() never got to its onClose hook: the log still ends with its `stop` record.
    app.stopAudit()
    app.log.error({ abandoned }, 'shutdown grace period over: attempts still open are audited as unknown')
  }
}, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
  else app.log.info({ signal }, 'shutting down')
  await app.close()
  await metricsServer?.close()
})

try {
  await app.listen({ host: config.host, port: config.port })
  if (metricsServer !== undefined) {
    const address = await metricsServer.listen({ host: config.host, port: config.metricsPort })
    app.log.info(`Metrics listening at ${address}/metrics`)
  }
} catch (error) {
  process.stderr.write(`Cannot listen on ${config.host}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n`)
  process.exit(1)
}
