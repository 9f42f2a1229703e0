/**
 * The documentation holds together: every relative link in README.md and docs/*.md reaches a
 * file that exists (and a heading of it, when the link names one), the README stays a front
 * page, and docs/configuration.md names exactly the variables the gateway reads. No network.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import t from 'tap'
import { EnvSchema } from '../../src/config.js'

const root = new URL('../..', import.meta.url).pathname
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)]
const read = (page: string) => readFileSync(join(root, page), 'utf8')

/** Generated or written on other branches of version 3; a link to one is a todo until it exists. */
const WRITTEN_ELSEWHERE = new Set(['docs/actions.md', 'docs/errors.md', 'docs/architecture.md'])

/** Markdown without its fenced code blocks (a `# comment` there is no heading, a `[x](y)` no link). */
function withoutFences (markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
}

/** GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces as hyphens. */
function slug (heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N} _-]/gu, '')
    .replace(/ /g, '-')
}

function anchors (page: string): Set<string> {
  const seen = new Map<string, number>()
  const result = new Set<string>()
  for (const match of withoutFences(read(page)).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = slug(match[1] as string)
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    result.add(count === 0 ? base : `${base}-${count}`)
  }
  return result
}

function links (page: string): string[] {
  return [...withoutFences(read(page)).replace(/`[^`\n]*`/g, '').matchAll(/\]\(([^)\s]+)(?: "[^"]*")?\)/g)].map((match) => match[1] as string)
}

t.test('every relative link points at a file that exists, and at a heading of it', async (t) => {
  let checked = 0
  for (const page of pages) {
    for (const link of links(page)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue // https:, mailto:
      const [path, anchor] = link.split('#') as [string, string | undefined]
      const target = path === '' ? page : relative(root, join(root, dirname(page), decodeURIComponent(path)))
      if (!existsSync(join(root, target))) {
        if (WRITTEN_ELSEWHERE.has(target)) {
          t.pass(`${page} → ${link}`, { todo: `${target} is written on another branch` })
          continue
        }
        t.fail(`${page} links to ${link}, but ${target} does not exist`)
        continue
      }
      checked++
      if (anchor !== undefined && target.endsWith('.md')) {
        t.ok(anchors(target).has(anchor), `${page} → ${link}: ${target} has a heading #${anchor}`)
      }
    }
  }
  t.ok(checked > 50, `links checked (${checked})`)
})

t.test('the README stays a front page', async (t) => {
  const lines = read('README.md').split('\n').length
  t.ok(lines <= 280, `README.md has ${lines} lines (at most 280)`)
  const map = read('README.md').slice(read('README.md').indexOf('## Documentation'))
  for (const page of pages.filter((page) => page.startsWith('docs/'))) {
    t.match(map, `](${page})`, `the README's map lists ${page}`)
  }
})

t.test('docs/configuration.md names every variable the gateway reads, and no other', async (t) => {
  const configuration = read('docs/configuration.md')
  const gatewayPart = configuration.slice(0, configuration.indexOf('## Variables of the other commands'))
  const known = Object.keys(EnvSchema.properties)
  const documented = new Set([...gatewayPart.matchAll(/^\| `([A-Z][A-Z0-9_]+)`(?:[^|]*`([A-Z][A-Z0-9_]+)`)?/gm)].flatMap((match) => [match[1], match[2]]).filter((name): name is string => name !== undefined))
  for (const name of known) t.ok(documented.has(name), `${name} is documented`)
  for (const name of documented) t.ok(known.includes(name), `${name} is a variable of src/config.ts`)
})
