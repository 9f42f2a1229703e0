/**
 * The room actions: join, remove, promote, adopt, the member and user reads, reasons, big rooms and unknown rooms.
 *
 * The files in test/rooms/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/rooms/adopt.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './rooms/adopt.test.js'
import './rooms/big-rooms.test.js'
import './rooms/join.test.js'
import './rooms/promote.test.js'
import './rooms/read.test.js'
import './rooms/reason.test.js'
import './rooms/remove.test.js'
import './rooms/unknown-rooms.test.js'
