import { problem, type GatewayError } from '../errors.js'
import { checked, unexpected } from './answers.js'
import type { SynapseResponse } from './client.js'

/**
 * Which Synapse the gateway talks to (GET /_synapse/admin/v1/server_version), and what an action
 * needs of it. Read at start without blocking it, refreshed by /readyz's probes and, when the
 * version an action relies on is older than VERSION_TTL_MS, before that action.
 */

/** Something an action needs that older Synapse releases lack (or accept and silently ignore). */
export interface SynapseFeature {
  /** The first Synapse release that has it, e.g. "1.91.0". */
  since: string
  /** What it is, for people: "locking accounts". */
  what: string
}

export const SERVER_VERSION_PATH = '/_synapse/admin/v1/server_version'

/** A remembered version is trusted this long by actions before they ask again (an upgrade shows within a minute). */
const VERSION_TTL_MS = 60_000

type Release = [number, number, number]

/** "1.163.2", "1.98.0rc1", "1.135.0 (b=develop, abc123)": the leading major.minor.patch; undefined when there is none. */
export function releaseOf (version: string): Release | undefined {
  const found = /^v?(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?/.exec(version.trim())
  if (found === null) return undefined
  return [Number(found[1]), Number(found[2]), Number(found[3] ?? 0)]
}

/** Whether `version` is `since` or later; a version that cannot be read is believed to be recent (and logged). */
export function hasRelease (version: string, since: string): boolean {
  const running = releaseOf(version)
  const needed = releaseOf(since) as Release
  if (running === undefined) return true
  for (let i = 0; i < 3; i++) {
    if (running[i] !== needed[i]) return (running[i] as number) > (needed[i] as number)
  }
  return true
}

/** The refusal of an action the running Synapse cannot do: nothing was sent. */
export function notSupported (feature: SynapseFeature, version: string): GatewayError {
  return problem('not_supported_by_synapse', `This Synapse (${version}) cannot do this: ${feature.what} needs Synapse ${feature.since} or later. Nothing was changed.`)
}

/** GET /_synapse/admin/v1/server_version's `server_version`. */
export function serverVersionOf (response: SynapseResponse): string {
  checked(response, false)
  const version = (response.json as { server_version?: unknown }).server_version
  if (response.status !== 200 || typeof version !== 'string' || version === '') throw unexpected(response)
  return version.slice(0, 100)
}

export interface VersionWatchOptions {
  /** Told each time the known version changes (first read included): for the log line. */
  onChange: (version: string, previous: string | undefined) => void
  now?: () => number
}

/** The last version Synapse reported, and when. */
export function createVersionWatch ({ onChange, now = Date.now }: VersionWatchOptions) {
  let known: { version: string, at: number } | undefined

  function note (version: string): void {
    const previous = known?.version
    known = { version, at: now() }
    if (version !== previous) onChange(version, previous)
  }

  return {
    /** The version last read, or undefined while Synapse has not answered yet. */
    get current (): string | undefined { return known?.version },
    note,
    /** The version, asked of Synapse (through `read`) when unknown or older than a minute. */
    async fresh (read: () => Promise<SynapseResponse>): Promise<string> {
      if (known !== undefined && now() - known.at < VERSION_TTL_MS) return known.version
      const version = serverVersionOf(await read())
      note(version)
      return version
    }
  }
}

export type VersionWatch = ReturnType<typeof createVersionWatch>
