/**
 * Batches: the front door and the items.
 *
 * The files in test/batch/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/batch/front-door.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './batch/front-door.test.js'
import './batch/items.test.js'
