/**
 * The committed openapi.yaml is what the code generates (it cannot drift), it is valid
 * OpenAPI 3.1, it documents every error code of the join route, and it is served with a docs page.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Validator } from '@seriousme/openapi-schema-validator'
import t from 'tap'
import { request } from 'undici'
import { generateOpenApiYaml } from '../../dev/openapi.js'
import { ACTION_PROBLEMS } from '../../src/schemas.js'
import { PROBLEMS } from '../../src/errors.js'
import { completeDocument } from '../../src/routes/docs.js'
import { CATALOG as ACTIONS } from '../../src/actions/catalog.js'
import { HOLD_PROBLEMS } from '../../src/actions/approval.js'
import { startHarness } from '../helpers/harness.js'

const committed = readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')

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
    if (status === '200' || status === '202') continue
    const content = response.content['application/problem+json']
    t.ok(content, `${status} is problem+json`)
    for (const [code, example] of Object.entries(content.examples as Record<string, any>)) {
      documented.add(code)
      t.equal(example.value.status, Number(status), `${code} example has status ${status}`)
    }
  }
  t.ok(spec.paths['/healthz'] !== undefined && spec.paths['/readyz'] !== undefined)
})

t.test('openapi.yaml has servers, a licence, operationIds, public health routes, headers and the code enum', async (t) => {
  const validator = new Validator()
  await validator.validate(committed)
  const spec = validator.resolveRefs() as any
  t.match(spec.info.license, { name: 'Apache-2.0', identifier: 'Apache-2.0' })
  t.ok(spec.servers.length > 0 && typeof spec.servers[0].url === 'string', 'servers')
  const operations = Object.entries(spec.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ name: `${method} ${path}`, operation })))
  const ids = operations.map(({ operation }) => operation.operationId)
  t.notOk(ids.includes(undefined), 'every operation has an operationId')
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  t.same(spec.paths['/healthz'].get.security, [], '/healthz needs no token')
  t.same(spec.paths['/readyz'].get.security, [], '/readyz needs no token')
  for (const { name, operation } of operations) {
    for (const [status, response] of Object.entries(operation.responses as Record<string, any>)) {
      t.ok(response.headers?.['x-request-id'], `${name} ${status}: x-request-id`)
      if (status === '429' || status === '503') t.ok(response.headers['Retry-After'], `${name} ${status}: Retry-After`)
      if (status === '401' || status === '403') t.ok(response.headers['WWW-Authenticate'], `${name} ${status}: WWW-Authenticate`)
    }
  }
  t.same(spec.components.schemas.Problem.properties.code.enum, Object.keys(PROBLEMS), 'code is an enum of every code in src/errors.ts')
})

t.test('a documented route without an operationId fails the generation, naming the route', async (t) => {
  t.throws(() => completeDocument({ paths: { '/v1/new': { post: { responses: {} } } } }), /POST \/v1\/new has no operationId/)
  t.same(completeDocument({ paths: { '/v1/new': { post: { operationId: 'createNew', security: [{ bearerAuth: [] }] } } } }).paths?.['/v1/new']?.post, { operationId: 'createNew', security: [{ bearerAuth: [] }] }, 'a route\'s own operationId and security are kept')
})

t.test('npx @redocly/cli lint reports no errors on openapi.yaml', async (t) => {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  // Through sh to drop tap's NODE_OPTIONS; telemetry and the update check off (no network).
  const output = await new Promise<string>((resolve, reject) => {
    execFile('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec node_modules/.bin/redocly lint openapi.yaml --format=json'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_UPDATE_NOTIFIER: '1' },
      timeout: 120_000
    }, (error, stdout, stderr) => {
      if (stdout.includes('"totals"')) resolve(stdout)
      else reject(new Error(`redocly lint gave no report: ${String(error)} ${stderr}`))
    })
  })
  const report = JSON.parse(output.slice(output.indexOf('{'))) as { totals: { errors: number }, problems: Array<{ severity: string, message: string, ruleId: string }> }
  t.equal(report.totals.errors, 0, JSON.stringify(report.problems.filter((problem) => problem.severity === 'error')))
})

t.test('every action route is in openapi.yaml with its operationId, its problems and, for acting ones, dry_run', async (t) => {
  const validator = new Validator()
  await validator.validate(committed)
  const spec = validator.resolveRefs() as any
  const operationIds = new Set<string>()
  for (const action of ACTIONS) {
    const path = action.url.replace(/:(\w+)/g, '{$1}')
    const operation = spec.paths[path]?.[action.method.toLowerCase()]
    t.ok(operation, `${action.method} ${path} (${action.name}) is documented`)
    t.equal(operation.operationId, action.operationId, `${action.name}: operationId`)
    t.notOk(operationIds.has(action.operationId), 'operationIds are unique')
    operationIds.add(action.operationId)
    t.same(operation.security, [{ bearerAuth: [] }])
    t.ok(operation.responses['200'], `${action.name}: its success`)
    const documented = new Set<string>()
    for (const [status, response] of Object.entries(operation.responses as Record<string, any>)) {
      if (status === '200' || status === '202') continue
      for (const [code, example] of Object.entries(response.content['application/problem+json'].examples as Record<string, any>)) {
        documented.add(code)
        t.equal(example.value.status, Number(status), `${action.name}: ${code} example has status ${status}`)
      }
    }
    t.equal(operation.responses['202'] !== undefined, action.acting, `${action.name}: 202 (held for approval) ${action.acting ? 'documented' : 'not offered'}`)
    const acting = ['reason_required', 'audit_unavailable', 'idempotency_in_progress', 'idempotency_key_reused', 'state_unavailable', ...HOLD_PROBLEMS]
    const expected = [...ACTION_PROBLEMS, ...action.problems, ...(action.acting ? acting : [])]
    const keyHeader = (operation.parameters as Array<{ in: string, name: string, required?: boolean }>).find((parameter) => parameter.in === 'header' && parameter.name.toLowerCase() === 'idempotency-key')
    t.equal(keyHeader === undefined ? 'absent' : keyHeader.required === true ? 'required' : 'optional', action.acting ? 'optional' : 'absent', `${action.name}: the Idempotency-Key header`)
    t.same([...documented].sort(), [...new Set(expected)].sort(), `${action.name}: every code the route can answer has an example`)
    const dryRun = (operation.parameters ?? []).find((parameter: { name: string }) => parameter.name === 'dry_run')
    t.equal(dryRun !== undefined, action.acting, `${action.name}: dry_run ${action.acting ? 'offered' : 'not offered'}`)
    for (const param of (path.match(/\{(\w+)\}/g) ?? []).map((name) => name.slice(1, -1))) {
      t.ok((operation.parameters as Array<{ name: string, in: string }>).some((parameter) => parameter.name === param && parameter.in === 'path'), `${action.name}: path parameter ${param}`)
    }
  }
  t.same([...operationIds].sort(), ACTIONS.map((action) => action.operationId).sort(), 'one operation per action of the catalog')
  t.equal(spec.paths['/v1/me'].get.operationId, 'getMe')
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
