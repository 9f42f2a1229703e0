/**
 * First step of `npm run test:synapse`: one clear line and exit 1 when the real Synapse is not
 * configured or not reachable, instead of every test file failing on its own.
 */
import { TargetError, checkTarget, targetFromEnv } from './helpers/target.js'

try {
  await checkTarget(targetFromEnv())
} catch (error) {
  if (!(error instanceof TargetError)) throw error
  process.stderr.write(`test:synapse: ${error.message}\n`)
  process.exit(1)
}
