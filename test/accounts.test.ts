/**
 * The account actions: lock, suspend, log out, password reset, deactivation (each with its dry run, idempotency, policy and audit).
 *
 * The files in test/accounts/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/accounts/deactivate.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './accounts/deactivate.test.js'
import './accounts/lock.test.js'
import './accounts/logout.test.js'
import './accounts/password.test.js'
import './accounts/suspend.test.js'
