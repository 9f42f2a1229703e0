/**
 * The Matrix identifier grammar (spec, "Appendices: Identifier Grammar"), as Synapse applies
 * it to the admin join API. Every identifier is at most 255 bytes of UTF-8.
 */
const MAX_ID_BYTES = 255

const DNS_NAME = /^[A-Za-z0-9.-]{1,255}$/
const IPV6_LITERAL = /^\[[0-9A-Fa-f:.]{2,45}\]$/
const PORT = /^[0-9]{1,5}$/
/** Historical user ID localparts: printable ASCII except ':' (Synapse still accepts them). */
const USER_LOCALPART = /^[\x21-\x39\x3B-\x7E]+$/
/** Room ID opaque part: printable ASCII except ':'. Room version 12 IDs have no server part. */
const ROOM_OPAQUE = /^[\x21-\x39\x3B-\x7E]+$/
/**
 * Alias localparts may hold any Unicode except ':' and NUL; we also refuse control, line-separator
 * and format characters (category Cf: zero-width spaces and joiners, bidi marks and overrides,
 * U+061C, U+2060 …), which make two aliases look alike in an audit review or break logs.
 */
// eslint-disable-next-line no-control-regex
const ALIAS_LOCALPART = /^[^:\u0000-\u001F\u007F-\u009F\u2028\u2029\p{Cf}\s]+$/u

export function isServerName (value: string): boolean {
  const portAt = value.startsWith('[') ? value.indexOf(']:') + 1 : value.lastIndexOf(':')
  const host = portAt > 0 ? value.slice(0, portAt) : value
  const port = portAt > 0 ? value.slice(portAt + 1) : undefined
  if (port !== undefined && (!PORT.test(port) || Number(port) > 65535)) return false
  return IPV6_LITERAL.test(host) || DNS_NAME.test(host)
}

function fitsIdLength (value: string): boolean {
  return value.length <= MAX_ID_BYTES && Buffer.byteLength(value, 'utf8') <= MAX_ID_BYTES
}

/** Splits `<sigil><local>:<server>` at the first ':'; `server` is undefined when there is none. */
function split (value: string): { local: string, server: string | undefined } {
  const colon = value.indexOf(':')
  if (colon === -1) return { local: value.slice(1), server: undefined }
  return { local: value.slice(1, colon), server: value.slice(colon + 1) }
}

export function isUserId (value: string): boolean {
  if (!value.startsWith('@') || !fitsIdLength(value)) return false
  const { local, server } = split(value)
  return server !== undefined && USER_LOCALPART.test(local) && isServerName(server)
}

export function isRoomId (value: string): boolean {
  if (!value.startsWith('!') || !fitsIdLength(value)) return false
  const { local, server } = split(value)
  return ROOM_OPAQUE.test(local) && (server === undefined || isServerName(server))
}

export function isRoomAlias (value: string): boolean {
  if (!value.startsWith('#') || !fitsIdLength(value)) return false
  const { local, server } = split(value)
  return server !== undefined && ALIAS_LOCALPART.test(local) && isServerName(server)
}

export function isRoomIdOrAlias (value: string): boolean {
  return isRoomId(value) || isRoomAlias(value)
}

/** The server part of a user ID or alias (validated before), or undefined for a v12 room ID. */
export function serverOf (id: string): string | undefined {
  return split(id).server
}
