/**
 * The served OpenAPI document (/openapi.json and the /docs page's /docs/json) names this
 * gateway: PUBLIC_URL when set, else the host the request came to; never the demo's fixed
 * 127.0.0.1:8080 unless that is where the gateway is.
 */
import t from 'tap'
import { request } from 'undici'
import { startHarness } from '../helpers/harness.js'

const serversAt = async (url: string, headers: Record<string, string> = {}) =>
  ((await (await request(url, { headers })).body.json()) as { servers: Array<{ url: string }> }).servers.map((server) => server.url)

t.test('PUBLIC_URL names the gateway in the served document and on the docs page', async (t) => {
  const h = await startHarness(t, { env: { PUBLIC_URL: 'https://matrix-admin.example.com/' } })
  t.same(await serversAt(`${h.url}/openapi.json`), ['https://matrix-admin.example.com'])
  t.same(await serversAt(`${h.url}/docs/json`), ['https://matrix-admin.example.com'], 'the page the docs UI loads')
  t.same(await serversAt(`${h.url}/openapi.json`, { host: 'evil.example' }), ['https://matrix-admin.example.com'], 'a Host header changes nothing')
})

t.test('without PUBLIC_URL: the host the request came to, a relative URL for a strange Host', async (t) => {
  const h = await startHarness(t)
  t.same(await serversAt(`${h.url}/openapi.json`), [h.url], 'the address the caller used')
  t.same(await serversAt(`${h.url}/docs/json`, { host: 'gateway.internal:8443' }), ['http://gateway.internal:8443'])
  t.same(await serversAt(`${h.url}/openapi.json`, { host: 'a"b<c' }), ['/'], 'a Host that is not a host name is not echoed')
})
