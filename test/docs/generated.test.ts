/**
 * docs/actions.md and docs/errors.md are what the code generates (run `npm run docs` after
 * changing an action or a problem): they cannot drift from the catalog and src/errors.ts.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { actionsMarkdown, errorsMarkdown } from '../../dev/docs.js'
import { CATALOG } from '../../src/actions/catalog.js'
import { PROBLEMS } from '../../src/errors.js'

const committed = (name: string) => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8')

t.test('docs/actions.md is current and lists every action of the catalog with its route', async (t) => {
  const text = committed('actions.md')
  t.equal(actionsMarkdown(), text, 'run `npm run docs`')
  for (const action of CATALOG) t.match(text, `| \`${action.name}\` | \`${action.method} ${action.url.replace(/:(\w+)/g, '{$1}')}\``)
})

t.test('docs/errors.md is current and lists every problem code with its status', async (t) => {
  const text = committed('errors.md')
  t.equal(errorsMarkdown(), text, 'run `npm run docs`')
  for (const [code, kind] of Object.entries(PROBLEMS)) t.match(text, `| \`${code}\` | ${kind.status} |`)
})
