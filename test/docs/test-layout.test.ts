/**
 * The suite's layout (docs/testing.md): tap runs the files at the top of test/; a folder
 * test/<area>/ is run by test/<area>.test.ts, which must import every file in it, or that file
 * would never run.
 */
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'

const testDir = new URL('../', import.meta.url)
const NOT_AREAS = new Set(['helpers', 'fixtures'])

t.test('every file of an area folder is imported by the area\'s test file, once', async (t) => {
  const areas = readdirSync(testDir, { withFileTypes: true }).filter((entry) => entry.isDirectory() && !NOT_AREAS.has(entry.name)).map((entry) => entry.name)
  t.ok(areas.length > 0)
  for (const area of areas) {
    const runner = readFileSync(new URL(`${area}.test.ts`, testDir), 'utf8')
    const imported = [...runner.matchAll(/^import '\.\/([^']+)\.js'$/gm)].map((match) => `${match[1] as string}.ts`).sort()
    const files = readdirSync(new URL(`${area}/`, testDir), { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.test.ts')).map((name) => `${area}/${name}`).sort()
    t.same(imported, files, `test/${area}.test.ts imports each file of test/${area}/`)
  }
})

t.test('tap runs only the top of test/, so no area file runs twice', async (t) => {
  const taprc = readFileSync(new URL('../.taprc', testDir), 'utf8')
  t.match(taprc, /^include:\n {2}- test\/\*\.test\.ts\n/m)
  const stray = readdirSync(new URL('helpers/', testDir), { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.test.ts'))
  t.same(stray, [], 'no test file among the helpers')
})
