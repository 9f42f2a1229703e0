/**
 * The audit log inside one gateway: records, the hash chain, signed checkpoints, readiness, refusals before routing, the verifier.
 *
 * The files in test/audit/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/audit/chain.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './audit/chain.test.js'
import './audit/checkpoint.test.js'
import './audit/gateway.test.js'
import './audit/log.test.js'
import './audit/readiness.test.js'
import './audit/unroutable.test.js'
import './audit/verify.test.js'
