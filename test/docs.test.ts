/**
 * The documentation is true: generated pages current, links and servers right, openapi.yaml served and complete, fuzzing findings fixed.
 *
 * The files in test/docs/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/docs/fuzz-findings.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './docs/fuzz-findings.test.js'
import './docs/generated.test.js'
import './docs/links.test.js'
import './docs/openapi.test.js'
import './docs/servers.test.js'
import './docs/test-layout.test.js'
