/**
 * The service around the actions: health, limits, secrecy, metrics, request IDs, configuration, validation, hostile input, reload lines, /v1/me, the demo.
 *
 * The files in test/service/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/service/config.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './service/config.test.js'
import './service/demo.test.js'
import './service/hardening.test.js'
import './service/me.test.js'
import './service/metrics.test.js'
import './service/operations.test.js'
import './service/reload-log.test.js'
import './service/request-id.test.js'
import './service/service.test.js'
import './service/validation.test.js'
