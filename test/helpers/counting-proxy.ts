import { createServer, request, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

interface Tap {
  after: (fn: () => unknown) => void
}

export interface CountingProxy {
  /** Point SYNAPSE_URL here. */
  url: string
  /** Requests forwarded and not yet answered, now. */
  readonly inFlight: number
  /** The most requests that were in flight at once (those `counts` selects). */
  readonly maxInFlight: number
  reset: () => void
}

/**
 * A plain HTTP proxy in front of the simulated homeserver that counts how many requests are in
 * flight at once: what the homeserver sees of the gateway's concurrency, over real sockets.
 */
export async function startCountingProxy (t: Tap, target: string, counts: (request: IncomingMessage) => boolean = () => true): Promise<CountingProxy> {
  const upstream = new URL(target)
  let inFlight = 0
  let maxInFlight = 0
  const sockets = new Set<Socket>()
  const server = createServer((incoming, outgoing) => {
    const counted = counts(incoming)
    if (counted) {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
    }
    let done = false
    const finish = () => {
      if (done) return
      done = true
      if (counted) inFlight--
    }
    const forward = request({ host: upstream.hostname, port: upstream.port, method: incoming.method, path: incoming.url, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(outgoing)
      answer.on('end', finish)
    })
    forward.on('error', () => { finish(); outgoing.destroy() })
    outgoing.on('close', finish)
    incoming.pipe(forward)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get inFlight () { return inFlight },
    get maxInFlight () { return maxInFlight },
    reset: () => { maxInFlight = inFlight }
  }
}
