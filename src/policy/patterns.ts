import { isRoomAlias, isRoomId, isRoomIdOrAlias, isUserId } from '../matrix-ids.js'

/** Why a pattern was refused; the loader puts it into the one-line PolicyError. */
export class PatternError extends Error {}

/**
 * A compiled `#local:server` or `@local:server` pattern. `*` is the only wildcard and never
 * matches `:`, so `#support-*:example.com` matches neither `#support-a:b:example.com` nor
 * `#support-x:example.com.evil`. Everything else is compared literally and case-sensitively,
 * like Matrix IDs.
 */
export interface IdMatcher { test (id: string): boolean }

function escapeRegExp (text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')
}

function compileGlob (pattern: string): IdMatcher {
  if (!pattern.includes('*')) return { test: (id) => id === pattern }
  const source = pattern.split('*').map(escapeRegExp).join('[^:]*')
  // `u` keeps a non-BMP character one unit of the glob; no `i`: IDs are case-sensitive.
  return new RegExp(`^${source}$`, 'u')
}

/** A pattern with a wildcard stands for the IDs it can match; `x` for `*` gives one of them to validate. */
function sampleOf (pattern: string): string {
  return pattern.replaceAll('*', 'x')
}

export function compileUserPattern (pattern: string): IdMatcher {
  if (!pattern.startsWith('@') || !pattern.includes(':') || !isUserId(sampleOf(pattern))) {
    throw new PatternError('is not a user pattern (@localpart:server, "*" as a wildcard)')
  }
  return compileGlob(pattern)
}

export interface RoomPatterns {
  /** Room IDs matched exactly. */
  readonly ids: ReadonlySet<string>
  /** Alias patterns, matched against the named, the canonical and the alt aliases. */
  readonly aliases: readonly IdMatcher[]
  /** `space:` references exactly as written. */
  readonly spaces: ReadonlySet<string>
}

export const SPACE_PREFIX = 'space:'

export function addRoomPattern (into: { ids: Set<string>, aliases: IdMatcher[], spaces: Set<string> }, pattern: string): void {
  if (pattern.startsWith(SPACE_PREFIX)) {
    const space = pattern.slice(SPACE_PREFIX.length)
    if (space.includes('*') || !isRoomIdOrAlias(space)) throw new PatternError('is not a space reference (space:!roomid:server or space:#alias:server, no wildcards)')
    into.spaces.add(pattern)
  } else if (pattern.startsWith('!')) {
    if (pattern.includes('*') || !isRoomId(pattern)) throw new PatternError('is not a room ID (room IDs are matched exactly, without wildcards)')
    into.ids.add(pattern)
  } else if (pattern.startsWith('#')) {
    if (!pattern.includes(':') || !isRoomAlias(sampleOf(pattern))) throw new PatternError('is not an alias pattern (#localpart:server, "*" as a wildcard)')
    into.aliases.push(compileGlob(pattern))
  } else {
    throw new PatternError('is not a room pattern (!roomid:server, #alias:server with "*" as a wildcard, or space:<room ID or alias>)')
  }
}
