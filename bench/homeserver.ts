/** The simulated homeserver as its own process for the benchmark: `tsx bench/homeserver.ts [delayMs]`. */
import { SimulatedHomeserver } from '../dev/homeserver/server.js'
import { addBigRooms } from '../dev/homeserver/big-rooms.js'

const delayMs = Number(process.argv[2] ?? 0)
// The benchmark sends millions of requests: they are not kept.
const homeserver = new SimulatedHomeserver({ adminToken: 'syt_bench_admin_token', recordCalls: false })
// Every user the benchmark joins exists and stays joinable: repeat joins into a public room.
addBigRooms(homeserver.state)
if (delayMs > 0) homeserver.fault = { kind: 'slow', delayMs }
const url = await homeserver.listen(0)
process.stdout.write(`${url}\n`)
