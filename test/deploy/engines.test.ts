/**
 * package.json's `engines` is honest: every package `npm ci` installs runs on the oldest Node it
 * names, so `npm ci` on that Node prints no EBADENGINE warning. cookie 2 (light-my-request's,
 * through fastify) wants Node 22; the `overrides` entry holds it at cookie 1.1.1, whose
 * stringifySetCookie takes the same object form light-my-request calls it with.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import t from 'tap'

const { minVersion, satisfies } = createRequire(import.meta.url)('semver') as {
  minVersion: (range: string) => { version: string } | null
  satisfies: (version: string, range: string) => boolean
}
const read = (file: string) => JSON.parse(readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')) as any

t.test('every locked package runs on the oldest Node that package.json accepts', async (t) => {
  const oldest = minVersion(read('package.json').engines.node as string)?.version as string
  t.match(oldest, /^20\./, 'Node 20 is still supported')
  const packages = read('package-lock.json').packages as Record<string, { version?: string, engines?: { node?: string } }>
  const refusing = Object.entries(packages)
    .filter(([path, entry]) => path !== '' && entry.engines?.node !== undefined && !satisfies(oldest, entry.engines.node))
    .map(([path, entry]) => `${path}@${entry.version ?? '?'} wants node ${entry.engines?.node ?? ''}`)
  t.same(refusing, [], `no package needs a newer Node than ${oldest}`)
})

t.test('fastify\'s inject still sets cookies with the overridden cookie package', async (t) => {
  const { default: Fastify } = await import('fastify')
  const app = Fastify()
  app.get('/', async (request) => request.headers.cookie ?? '')
  const response = await app.inject({ method: 'GET', url: '/', cookies: { session: 'a b' } })
  t.equal(response.body, 'session=a%20b')
  await app.close()
})
