/**
 * First step of `npm run test:synapse`: one clear line and exit 1 when the real Synapse is not
 * configured or not reachable, instead of every test file failing on its own.
 */
import { TargetError, checkTarget, targetFromEnv } from './helpers/target.js'

try {
  const target = targetFromEnv()
  const version = await checkTarget(target)
  process.stdout.write(`test:synapse: against Synapse ${version} at ${target.url}\n`)
} catch (error) {
  if (!(error instanceof TargetError)) throw error
  process.stderr.write(`test:synapse: ${error.message}\n`)
  process.exit(1)
}
