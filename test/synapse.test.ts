/**
 * Talking to Synapse: the tracked façade, setup, version awareness, per-call breaker, failed reads.
 *
 * The files in test/synapse/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/synapse/breaker-per-call.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './synapse/breaker-per-call.test.js'
import './synapse/facade.test.js'
import './synapse/read-failures.test.js'
import './synapse/setup.test.js'
import './synapse/version.test.js'
