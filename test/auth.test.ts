/**
 * Org tokens: keys and JWKS, claims, refusals, the per-IP limit in front of them.
 *
 * The files in test/auth/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/auth/ip-limit.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './auth/ip-limit.test.js'
import './auth/jwks.test.js'
import './auth/refusals.test.js'
import './auth/tokens.test.js'
