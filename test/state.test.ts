/**
 * Shared state on a real redis-server: idempotency records, rate limits, the memory limit store, what happens when Redis is away.
 *
 * The files in test/state/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/state/idempotency.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './state/idempotency.test.js'
import './state/memory-limit-store.test.js'
import './state/rate-limit.test.js'
import './state/shared.test.js'
