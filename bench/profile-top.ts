/**
 * Summarises a `node --cpu-prof` profile (BENCH_CPU_PROF=1 npm run bench writes one):
 * `npx tsx bench/profile-top.ts bench/results/<file>.cpuprofile [entries]` prints the functions
 * with the most self time, self time by package (node_modules/<name>, our src/, node:), and our
 * own functions by inclusive time (themselves and what they call).
 */
import { readFileSync } from 'node:fs'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const [file, count = '25'] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: tsx bench/profile-top.ts FILE.cpuprofile [entries]\n')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfUs = new Map<number, number>()
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
const total = [...selfUs.values()].reduce((sum, us) => sum + us, 0)
const idle = [...selfUs.entries()].filter(([id]) => ['(idle)', '(program)'].includes(byId.get(id)?.callFrame.functionName ?? '')).reduce((sum, [, us]) => sum + us, 0)

function where (url: string): string {
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]
  if (dependency !== undefined) return dependency
  if (url.includes('/dist/')) return `ours: ${url.slice(url.indexOf('/dist/') + 6)}`
  if (url.includes('/src/')) return `ours: ${url.slice(url.indexOf('/src/') + 5)}`
  if (url.startsWith('node:')) return 'node'
  return url === '' ? '(native / gc)' : url
}

const functions = new Map<string, number>()
const packages = new Map<string, number>()
for (const [id, us] of selfUs) {
  const frame = byId.get(id)?.callFrame
  if (frame === undefined || ['(idle)', '(program)'].includes(frame.functionName)) continue
  const place = where(frame.url)
  const name = `${frame.functionName || '(anonymous)'}  ${place}:${frame.lineNumber + 1}`
  functions.set(name, (functions.get(name) ?? 0) + us)
  const pkg = place.startsWith('ours: ') ? 'ours' : place
  packages.set(pkg, (packages.get(pkg) ?? 0) + us)
}
const busy = total - idle
const pct = (us: number) => `${(100 * us / busy).toFixed(1).padStart(5)} %`
process.stdout.write(`busy ${(busy / 1e6).toFixed(1)} s of ${(total / 1e6).toFixed(1)} s sampled; shares of busy time\n\nby package:\n`)
for (const [name, us] of [...packages].sort((a, b) => b[1] - a[1]).slice(0, 20)) process.stdout.write(`${pct(us)}  ${name}\n`)
process.stdout.write('\nby function (self time):\n')
for (const [name, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, Number(count))) process.stdout.write(`${pct(us)}  ${name}\n`)

// Inclusive: each sample counts once for every distinct function of ours on its stack.
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
const inclusive = new Map<string, number>()
profile.samples.forEach((id, i) => {
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const frame = byId.get(at)?.callFrame
    if (frame === undefined || !/\/(dist|src)\//.test(frame.url)) continue
    seen.add(`${frame.functionName || '(anonymous)'}  ${where(frame.url)}:${frame.lineNumber + 1}`)
  }
  for (const name of seen) inclusive.set(name, (inclusive.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0))
})
process.stdout.write('\nour functions (inclusive time):\n')
for (const [name, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(count))) process.stdout.write(`${pct(us)}  ${name}\n`)
