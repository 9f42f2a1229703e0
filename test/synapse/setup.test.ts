/**
 * Synapse set up wrong is never "user not found": a SYNAPSE_URL with a path, or a proxy that does
 * not forward /_synapse/admin, gives upstream_error with a detail about SYNAPSE_URL, and /readyz
 * says which part is missing. An unreachable Synapse is logged at warn once per change.
 */
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../../dev/homeserver/state.js'
import { startHarness } from '../helpers/harness.js'

const room = encodeURIComponent(RECORDED_ROOMS.publicTest)

/** A reverse proxy that forwards only /_matrix to the homeserver, as a misconfigured one would. */
async function matrixOnlyProxy (t: { after: (fn: () => unknown) => void }, target: string): Promise<string> {
  const { hostname, port } = new URL(target)
  const proxy = createServer((incoming, outgoing) => {
    if (!(incoming.url ?? '').startsWith('/_matrix/')) {
      outgoing.writeHead(404, { 'content-type': 'text/html' }).end('<html>404 Not Found</html>')
      return
    }
    const forwarded = httpRequest({ hostname, port, path: incoming.url, method: incoming.method, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(outgoing)
    })
    incoming.pipe(forwarded)
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.after(async () => { await new Promise((resolve) => proxy.close(resolve)) })
  return `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
}

t.test('SYNAPSE_URL with a path: Synapse\'s 404 M_UNRECOGNIZED is upstream_error about SYNAPSE_URL, never user_not_found', async (t) => {
  const base = await startHarness(t)
  const h = await startHarness(t, { synapseUrl: `${base.homeserverUrl}/synapse` })
  const res = await h.join(room, { user_id: '@alice:test.local' })
  t.equal(res.status, 502)
  t.equal(res.body.code, 'upstream_error')
  t.match(res.body.detail, /SYNAPSE_URL/)
  t.not(res.body.code, 'user_not_found')
  const ready = await request(`${h.url}/readyz`)
  t.equal(ready.statusCode, 503)
  t.match(await ready.body.json(), { code: 'upstream_error', detail: /SYNAPSE_URL.*client API/ })
})

t.test('a proxy that forwards /_matrix but not /_synapse/admin: readiness names the admin API', async (t) => {
  const base = await startHarness(t)
  const h = await startHarness(t, { synapseUrl: await matrixOnlyProxy(t, base.homeserverUrl) })
  const ready = await request(`${h.url}/readyz`)
  t.equal(ready.statusCode, 503)
  t.match(await ready.body.json(), { code: 'upstream_error', detail: /admin API.*\/_synapse\/admin/ })
  const res = await h.join(room, { user_id: '@alice:test.local' })
  t.equal(res.body.code, 'upstream_error', 'the proxy\'s HTML 404 is not "user not found"')
  t.match(res.body.detail, /SYNAPSE_URL/)
})

t.test('an admin token of a non-admin account: readiness says so', async (t) => {
  const h = await startHarness(t, { homeserver: { userTokens: { syt_not_an_admin: '@alice:test.local' } }, env: { SYNAPSE_ADMIN_TOKEN: 'syt_not_an_admin' } })
  const ready = await request(`${h.url}/readyz`)
  t.equal(ready.statusCode, 503)
  t.match(await ready.body.json(), { code: 'upstream_auth_failed', detail: /not a Synapse server admin/ })
})

t.test('an unreachable Synapse is logged at warn once per change of state, not per request', async (t) => {
  const h = await startHarness(t, { synapseUrl: 'http://127.0.0.1:9' })
  for (let i = 0; i < 4; i++) t.equal((await h.join(room, { user_id: '@alice:test.local' })).body.code, 'upstream_unavailable')
  const warnings = h.logs().split('\n').filter((line) => line.includes('Synapse cannot be reached: check SYNAPSE_URL'))
  t.equal(warnings.length, 1, 'one warning for four failed requests')
  t.match(warnings[0], /"level":40/)
})
