/**
 * No Docker engine runs here, so the Docker files are checked by reading them: the image's start
 * command is the README's, it runs as `node`, its HEALTHCHECK works (run here against a real
 * gateway), and the build compiles every command into dist/ (test/deploy/compose.test.ts checks the
 * compose stack).
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { compiledTree } from '../helpers/compiled.js'
import { startHarness } from '../helpers/harness.js'

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')
const dockerfile = read('Dockerfile')
const stages = dockerfile.split(/^FROM /m).slice(1)
const runtime = stages.at(-1) as string
const jsonInstruction = (text: string, instruction: string) => {
  const match = new RegExp(`^${instruction} (?:.*?CMD )?(\\[.*\\])\\s*$`, 'm').exec(text.replace(/\\\n\s*/g, ''))
  return match === null ? undefined : JSON.parse(match[1] as string) as string[]
}

t.test('the image starts the way the README says, as node (not npm) under the node user', async (t) => {
  const cmd = jsonInstruction(runtime, 'CMD')
  t.same(cmd, ['node', 'dist/server.js'])
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>, engines: Record<string, string> }
  t.equal(pkg.scripts.start, (cmd as string[]).join(' '), 'npm start runs the same command')
  t.match(read('README.md'), /npm start runs dist\/server\.js/)
  t.match(read('README.md'), /CMD \["node", "dist\/server\.js"\]/, 'the README names the image\'s command')
  t.equal(stages.length, 2, 'multi-stage')
  t.ok(stages.every((stage) => stage.startsWith('node:24')), 'Node 24 LTS base')
  t.match(runtime, /^USER node$/m)
  t.match(runtime, /HOST=0\.0\.0\.0/)
  t.match(runtime, /npm ci --omit=dev/)
  t.match(runtime, /COPY --from=build \/app\/dist \.\/dist/)
  const instructions = dockerfile.split('\n').filter((line) => !line.trimStart().startsWith('#')).join('\n')
  t.notMatch(instructions, /curl|wget|apt-get/, 'no HTTP client installed or needed in the image')
  t.match(read('.dockerignore'), /^node_modules$/m)
  t.equal(pkg.engines.node, '>=20.19')
})

t.test('the HEALTHCHECK command reports a serving gateway healthy and a dead one unhealthy', async (t) => {
  const healthcheck = jsonInstruction(runtime, 'HEALTHCHECK') as string[]
  t.equal(healthcheck[0], 'node')
  const h = await startHarness(t)
  const run = async (port: string) => await promisify(execFile)(process.execPath, healthcheck.slice(1), { env: { PORT: port } }).then(() => 0, (error: { code: number }) => error.code)
  t.equal(await run(new URL(h.url).port), 0)
  t.equal(await run('9'), 1)
})

t.test('the image holds every command compiled from src/, and they import only production dependencies', async (t) => {
  const build = stages[0] as string
  t.match(build, /^COPY src \.\/src$/m, 'the whole of src/ is compiled (new CLIs such as src/audit/verify-cli.ts included)')
  t.match(build, /^RUN npm run build$/m)
  const ignored = read('.dockerignore').split('\n')
  for (const needed of ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json']) t.notOk(ignored.includes(needed), `${needed} reaches the build`)
  const tsconfig = JSON.parse(read('tsconfig.build.json')) as { include: string[], compilerOptions: { rootDir: string, outDir: string } }
  t.same(tsconfig.include, ['src'])
  t.same([tsconfig.compilerOptions.rootDir, tsconfig.compilerOptions.outDir], ['src', 'dist'], 'src/x/y.ts becomes dist/x/y.js')

  // What the build emits, file by file: the tree the process tests run (test/helpers/compiled.ts,
  // TypeScript's own transpiler per file, as `tsc` emits without the type check that `npm run
  // typecheck` makes), and check what the runtime stage (npm ci --omit=dev) can load.
  const outDir = join(compiledTree(), 'src')
  const sources = readdirSync(new URL('../../src', import.meta.url), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
  const compiled = readdirSync(outDir, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.js'))
  t.same(compiled.sort(), sources.map((file) => file.replace(/\.ts$/, '.js')).sort(), 'one dist/ file per src/ file')
  t.ok(compiled.includes('server.js') && compiled.includes('bootstrap-admin.js'))
  const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> }
  for (const file of compiled) {
    const code = readFileSync(join(outDir, file), 'utf8')
    for (const [, specifier] of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)) {
      if ((specifier as string).startsWith('.')) {
        t.ok(existsSync(join(dirname(join(outDir, file)), specifier as string)), `${file}: ${String(specifier)} is inside dist/`)
        continue
      }
      if ((specifier as string).startsWith('node:')) continue
      const name = (specifier as string).split('/').slice(0, (specifier as string).startsWith('@') ? 2 : 1).join('/')
      t.ok(name in pkg.dependencies, `${file}: ${name} is a production dependency`)
    }
  }
})
