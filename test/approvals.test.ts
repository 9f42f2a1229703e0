/**
 * Four-eyes approvals: the policy that asks for them, the store, the routes, the gateway holding and running requests, replicas sharing them.
 *
 * The files in test/approvals/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/approvals/gateway.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './approvals/gateway.test.js'
import './approvals/policy.test.js'
import './approvals/replicas.test.js'
import './approvals/routes.test.js'
import './approvals/store.test.js'
