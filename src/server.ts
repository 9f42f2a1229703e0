import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { buildMetricsServer } from './metrics.js'

/** Reads the environment, listens, and shuts down gracefully. Nothing else. */
let config
try {
  config = loadConfig(process.env)
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  process.stderr.write(`${error.message}\n`)
  process.exit(1)
}

const app = await buildApp(config)
const metricsServer = config.metricsEnabled && config.metricsPort !== undefined ? buildMetricsServer(app.metrics.registry) : undefined

// In-flight requests finish, new ones get 503, then the Synapse pool and audit file close.
closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
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
