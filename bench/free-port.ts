import { createServer } from 'node:net'

/** A loopback port nothing listens on right now, for a process the bench starts. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}
