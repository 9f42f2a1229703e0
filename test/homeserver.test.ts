/**
 * The simulated homeserver held to the recordings of real Synapses, and what it does beyond them.
 *
 * The files in test/homeserver/ run here in one process: starting a test process costs about two
 * seconds of CPU under tap. Run one alone with `npx tap --disable-coverage test/homeserver/accounts-contract.test.ts`.
 * test/docs/test-layout.test.ts checks that every file of the folder is imported here.
 */
import './homeserver/accounts-contract.test.js'
import './homeserver/accounts.test.js'
import './homeserver/actions-contract.test.js'
import './homeserver/join-contract.test.js'
import './homeserver/main.test.js'
import './homeserver/simulator.test.js'
import './homeserver/versions.test.js'
