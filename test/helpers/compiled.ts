import { createHash } from 'node:crypto'
import { accessSync, constants, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const root = fileURLToPath(new URL('../..', import.meta.url))
const TREES = ['src', 'dev']

function sourcesUnder (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort()
}

let built: string | undefined

/** node_modules/.cache when it can be written (a read-only checkout uses the temporary directory). */
function cacheDir (): string {
  const preferred = join(root, 'node_modules', '.cache', 'gateway-test-build')
  try {
    mkdirSync(preferred, { recursive: true })
    accessSync(preferred, constants.W_OK)
    return preferred
  } catch {
    return join(tmpdir(), `gateway-test-build-${createHash('sha256').update(root).digest('hex').slice(0, 8)}`)
  }
}

/**
 * Whether another test process is compiling these sources (the test files run in parallel): if
 * so, waits for its tree rather than compiling the same again. A lock older than two minutes
 * belongs to a process that died: this one compiles.
 */
function othersCompile (dir: string): boolean {
  mkdirSync(dirname(dir), { recursive: true })
  try {
    mkdirSync(`${dir}.lock`)
    return false
  } catch {
    const pause = new Int32Array(new SharedArrayBuffer(4))
    while (!existsSync(dir)) {
      let age = 0
      try { age = Date.now() - statSync(`${dir}.lock`).mtimeMs } catch {}
      if (age > 120_000) return false
      Atomics.wait(pause, 0, 0, 50)
    }
    return true
  }
}

/**
 * src/ and dev/ as JavaScript, for the tests that start real processes: `node <dir>/src/server.js`
 * starts in a fraction of the time `node --import tsx src/server.ts` takes, since tsx resolves and
 * compiles some 500 modules through its loader thread on every start. The tree is compiled once
 * per content (a hash of every source and package.json names its directory, so an edit makes a
 * new one) and shared by the test files running in parallel. Type errors are `npm run typecheck`'s
 * business: this only strips types, as tsx does. package.json sits beside src/ as in the repository,
 * for the modules that read it relative to themselves.
 */
export function compiledTree (): string {
  if (built !== undefined) return built
  const files = TREES.flatMap((tree) => sourcesUnder(join(root, tree)))
  const hash = createHash('sha256')
  for (const file of [...files, join(root, 'package.json')]) hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0')
  const cache = cacheDir()
  const dir = join(cache, hash.digest('hex').slice(0, 16))
  if (!existsSync(dir) && !othersCompile(dir)) {
    const staging = `${dir}.${process.pid}.tmp`
    // Loaded only to compile: it takes a second to load, and most runs find the tree made.
    const ts = createRequire(import.meta.url)('typescript') as typeof import('typescript')
    for (const file of files) {
      const output = ts.transpileModule(readFileSync(file, 'utf8'), {
        fileName: file,
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true }
      }).outputText
      const target = join(staging, relative(root, file)).replace(/\.ts$/, '.js')
      mkdirSync(dirname(target), { recursive: true })
      writeFileSync(target, output)
    }
    cpSync(join(root, 'package.json'), join(staging, 'package.json'))
    try {
      renameSync(staging, dir)
    } catch (err) {
      // Another test file compiled the same sources first: theirs is as good.
      rmSync(staging, { recursive: true, force: true })
      if (!existsSync(dir)) throw err
    }
    rmSync(`${dir}.lock`, { recursive: true, force: true })
    // Trees of sources as they were an hour ago and more are no use to anyone.
    for (const entry of readdirSync(cache)) {
      const path = join(cache, entry)
      if (path !== dir && Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { recursive: true, force: true })
    }
  }
  built = dir
  return dir
}

/** The compiled JavaScript of a TypeScript file of this repository (e.g. 'src/server.ts'). */
export function compiled (script: string): string {
  return join(compiledTree(), script.replace(/\.ts$/, '.js'))
}
