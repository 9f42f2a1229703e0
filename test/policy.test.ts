/**
 * The policy: engine, files, warnings, the shipped examples, the demo policy, the policy over HTTP.
 *
 * The files in test/policy/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/policy/demo.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './policy/demo.test.js'
import './policy/engine.test.js'
import './policy/examples.test.js'
import './policy/files.test.js'
import './policy/http.test.js'
import './policy/warnings.test.js'
