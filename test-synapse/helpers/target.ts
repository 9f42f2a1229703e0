/**
 * Which real Synapse the tier runs against: SYNAPSE_TEST_URL, SYNAPSE_TEST_SHARED_SECRET (its
 * registration_shared_secret) and SYNAPSE_TEST_SERVER_NAME. `checkTarget` says in one line what
 * is missing or wrong, so `npm run test:synapse` can stop before any test file runs.
 */
import { request } from 'undici'

export interface SynapseTarget {
  url: string
  sharedSecret: string
  serverName: string
}

const VARIABLES = ['SYNAPSE_TEST_URL', 'SYNAPSE_TEST_SHARED_SECRET', 'SYNAPSE_TEST_SERVER_NAME'] as const

export const HOW_TO_START = 'start one with `scripts/synapse/start.sh /tmp/synapse-it 18008` (newest) or `../shared/synapse/real/start.sh /tmp/synapse-it 18008` (1.67) ' +
  'and export base_url, registration_shared_secret and server_name from /tmp/synapse-it/RUNNING.json (docs/synapse-versions.md)'

export class TargetError extends Error {}

export function targetFromEnv (env: Record<string, string | undefined> = process.env): SynapseTarget {
  const missing = VARIABLES.filter((name) => (env[name] ?? '') === '')
  if (missing.length > 0) {
    throw new TargetError(`${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not set: the tier needs a real Synapse; ${HOW_TO_START}`)
  }
  return {
    url: (env.SYNAPSE_TEST_URL as string).replace(/\/+$/, ''),
    sharedSecret: env.SYNAPSE_TEST_SHARED_SECRET as string,
    serverName: env.SYNAPSE_TEST_SERVER_NAME as string
  }
}

async function getJson (url: string): Promise<{ status: number, json: any }> {
  const response = await request(url, { headersTimeout: 5000, bodyTimeout: 5000, signal: AbortSignal.timeout(8000) })
  const text = await response.body.text()
  let json: any
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: response.statusCode, json }
}

/** Synapse's version as `GET /_synapse/admin/v1/server_version` says it, e.g. "1.163.2". */
export async function synapseVersion (target: SynapseTarget): Promise<string> {
  const answer = await getJson(`${target.url}/_synapse/admin/v1/server_version`)
  if (answer.status !== 200 || typeof answer.json?.server_version !== 'string') {
    throw new TargetError(`the Synapse at ${target.url} answered GET /_synapse/admin/v1/server_version with HTTP ${answer.status}`)
  }
  return answer.json.server_version
}

/** True when `version` (e.g. "1.163.2", "1.67.0") is at least `minimum` (e.g. "1.100"). */
export function atLeast (version: string, minimum: string): boolean {
  const parts = (text: string) => text.split(/[.+-]/).slice(0, 3).map((part) => Number.parseInt(part, 10) || 0)
  const [have, want] = [parts(version), parts(minimum)]
  for (let i = 0; i < 3; i++) {
    if ((have[i] ?? 0) !== (want[i] ?? 0)) return (have[i] ?? 0) > (want[i] ?? 0)
  }
  return true
}

/** Reachable, really a Synapse, the server name it signs with, shared-secret registration on. Answers its version. */
export async function checkTarget (target: SynapseTarget): Promise<string> {
  let versions
  try {
    versions = await getJson(`${target.url}/_matrix/client/versions`)
  } catch (error) {
    throw new TargetError(`Synapse at SYNAPSE_TEST_URL=${target.url} cannot be reached (${(error as Error).message}); ${HOW_TO_START}`)
  }
  if (versions.status !== 200 || !Array.isArray(versions.json?.versions)) {
    throw new TargetError(`SYNAPSE_TEST_URL=${target.url} answered /_matrix/client/versions with HTTP ${versions.status}, not a Matrix homeserver's answer; ${HOW_TO_START}`)
  }
  const key = await getJson(`${target.url}/_matrix/key/v2/server`)
  if (key.status === 200 && typeof key.json?.server_name === 'string' && key.json.server_name !== target.serverName) {
    throw new TargetError(`SYNAPSE_TEST_SERVER_NAME=${target.serverName} but the Synapse at ${target.url} is ${String(key.json.server_name)}`)
  }
  const nonce = await getJson(`${target.url}/_synapse/admin/v1/register`)
  if (nonce.status !== 200 || typeof nonce.json?.nonce !== 'string') {
    throw new TargetError(`the Synapse at ${target.url} has shared-secret registration off (GET /_synapse/admin/v1/register: HTTP ${nonce.status}); set registration_shared_secret in its homeserver.yaml`)
  }
  return await synapseVersion(target)
}
