import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { compiled } from './compiled.js'
import { waitFor } from './wait.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/**
 * Starts a TypeScript command of this repository (src/ or dev/) as a real process, compiled
 * (./compiled.ts), with only the given env, in the repository's directory. Through sh, to drop
 * the NODE_OPTIONS that tap injects: coverage of the child would otherwise be merged in and
 * report every line of src/ as covered.
 */
export function spawnScript (script: string, args: string[], env: Record<string, string | undefined>): ChildProcess {
  const clean = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))
  return spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, compiled(script), ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...clean },
    stdio: ['ignore', 'pipe', 'pipe']
  })
}

/** Starts src/server.ts as a real process, with only the given env. */
export const spawnServer = (env: Record<string, string | undefined>): ChildProcess => spawnScript('src/server.ts', [], env)

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

/** Runs a TypeScript command of this repository (e.g. src/bootstrap-admin.ts) to its end, with only the given env. */
export async function runScript (script: string, args: string[], env: Record<string, string> = {}): Promise<Collected & { code: number | null }> {
  const child = spawnScript(script, args, env)
  const out = collect(child)
  const { code } = await exited(child)
  return { ...out, code }
}

export async function runServer (env: Record<string, string | undefined>): Promise<Collected & { code: number | null }> {
  const child = spawnServer(env)
  const out = collect(child)
  const { code } = await exited(child)
  return { ...out, code }
}

const LISTENING = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/

/** Resolves with the URL once the server logs that it listens (a busy machine takes a while). */
export async function listening (child: ChildProcess, out: Collected): Promise<string> {
  await waitFor(() => LISTENING.test(out.stdout) || child.exitCode !== null, 'the server to log "Server listening at"', { timeoutMs: 60_000, describe: () => `${out.stdout} ${out.stderr}` })
  const match = LISTENING.exec(out.stdout)
  if (match === null) throw new Error(`server exited before listening: ${out.stderr}`)
  return match[1] as string
}
