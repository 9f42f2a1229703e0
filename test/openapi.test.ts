/**
 * The committed openapi.yaml is what the code generates (it cannot drift), it is valid
 * OpenAPI 3.1, it documents every error code of the join route, and it is served with a docs page.
 */
import { readFileSync } from 'node:fs'
import { Validator } from '@seriousme/openapi-schema-validator'
import t from 'tap'
import { request } from 'undici'
import { generateOpenApiYaml } from '../dev/openapi.js'
import { ACTION_PROBLEMS } from '../src/schemas.js'
import { roomJoin } from '../src/actions/room-join.js'
import { startHarness } from './helpers/harness.js'

const committed = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')

t.test('openapi.yaml is what the code generates (run `npm run openapi` after changing a route)', async (t) => {
  t.equal(await generateOpenApiYaml(), committed)
})

t.test('openapi.yaml is valid OpenAPI 3.1 and documents every problem with an example', async (t) => {
  const validator = new Validator()
  const result = await validator.validate(committed)
  t.ok(result.valid, JSON.stringify(result.errors))
  t.equal(validator.version, '3.1')
  const spec = validator.resolveRefs() as any
  t.same(spec.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: spec.components.securitySchemes.bearerAuth.description })
  const join = spec.paths['/v1/rooms/{roomIdOrAlias}/members'].post
  t.same(join.security, [{ bearerAuth: [] }])
  const documented = new Set<string>()
  for (const [status, response] of Object.entries(join.responses as Record<string, any>)) {
    if (status === '200') continue
    const content = response.content['application/problem+json']
    t.ok(content, `${status} is problem+json`)
    for (const [code, example] of Object.entries(content.examples as Record<string, any>)) {
      documented.add(code)
      t.equal(example.value.status, Number(status), `${code} example has status ${status}`)
    }
  }
  t.same([...documented].sort(), [...new Set([...ACTION_PROBLEMS, ...roomJoin.problems, 'reason_required', 'audit_unavailable'])].sort(), 'every code the route can answer has an example')
  t.ok(spec.paths['/healthz'] !== undefined && spec.paths['/readyz'] !== undefined)
})

t.test('served at /openapi.json with a docs page at /docs, without a token; DOCS_ENABLED=false turns both off', async (t) => {
  const h = await startHarness(t)
  const json = await request(`${h.url}/openapi.json`)
  t.equal(json.statusCode, 200)
  t.match(await json.body.json(), { openapi: '3.1.0', info: { title: 'synapse-admin-gateway' } })
  const docs = await fetch(`${h.url}/docs`)
  t.equal(docs.status, 200)
  t.match(docs.headers.get('content-type'), /text\/html/)
  t.match(await docs.text(), /swagger-ui/i)
  const initializer = await fetch(`${h.url}/docs/static/swagger-initializer.js`)
  t.equal(initializer.status, 200, 'the page\'s assets are served locally (no CDN)')
  const off = await startHarness(t, { env: { DOCS_ENABLED: 'false' } })
  t.equal((await request(`${off.url}/openapi.json`)).statusCode, 404)
  t.equal((await request(`${off.url}/docs`)).statusCode, 404)
})
