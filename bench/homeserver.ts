/** The simulated homeserver as its own process for the benchmark: `tsx bench/homeserver.ts [delayMs]`. */
import { SimulatedHomeserver } from '../dev/homeserver/server.js'

const delayMs = Number(process.argv[2] ?? 0)
const homeserver = new SimulatedHomeserver({ adminToken: 'syt_bench_admin_token' })
// Every user the benchmark joins exists and stays joinable: repeat joins into a public room.
if (delayMs > 0) homeserver.fault = { kind: 'slow', delayMs }
const url = await homeserver.listen(0)
// Requests are recorded for tests; the benchmark sends millions, so forget them.
homeserver.calls.push = () => 0
process.stdout.write(`${url}\n`)
