import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

/**
 * Starts src/server.ts as a real process (TypeScript through tsx), with only the given env.
 * Through sh, to drop the NODE_OPTIONS that tap injects: coverage of a tsx-compiled child
 * would otherwise be merged in and report every line of src/ as covered.
 */
export function spawnServer (env: Record<string, string | undefined>): ChildProcess {
  const clean = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))
  return spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" --import tsx src/server.ts', process.execPath], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...clean },
    stdio: ['ignore', 'pipe', 'pipe']
  })
}

export interface Collected { stdout: string, stderr: string }

export function collect (child: ChildProcess): Collected {
  const out: Collected = { stdout: '', stderr: '' }
  child.stdout?.on('data', (chunk: Buffer) => { out.stdout += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { out.stderr += chunk.toString() })
  return out
}

export async function exited (child: ChildProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode }
  return await new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}

export async function runServer (env: Record<string, string | undefined>): Promise<Collected & { code: number | null }> {
  const child = spawnServer(env)
  const out = collect(child)
  const { code } = await exited(child)
  return { ...out, code }
}

/** Resolves with the URL once the server logs that it listens. */
export async function listening (child: ChildProcess, out: Collected): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const match = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(out.stdout)
    if (match !== null) return match[1] as string
    if (child.exitCode !== null) throw new Error(`server exited: ${out.stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`server did not start: ${out.stdout} ${out.stderr}`)
}
