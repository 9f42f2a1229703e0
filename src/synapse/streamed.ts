import { JSONParser } from '@streamparser/json'

/**
 * Reading a big Synapse answer (a room's whole state, its members list) without holding it.
 * Up to WHOLE_PARSE_BYTES the body is collected and parsed with JSON.parse (V8's parser is some
 * twenty times faster than any streaming one); beyond that it is parsed as it arrives
 * (@streamparser/json), so memory stays bounded whatever the size of the room. Either way only
 * the values a decision needs are kept. `paths` are JSONPath-like selectors as @streamparser/json
 * names them (`$.state.*`: each element of `state`); each selected value is handed to `keep`.
 */
export interface Selection {
  paths: string[]
  keep: (value: unknown, path: string) => void
  /** What the answer's `json` becomes once the whole body was read. */
  result: () => unknown
}

/** Makes a fresh selection per attempt (a retried call starts over). */
export type SelectionFactory = () => Selection

export interface StreamedJson {
  write: (chunk: Uint8Array) => void
  /** The selection's result, or undefined when the body was not (whole) JSON. */
  end: () => unknown
}

/** Bodies up to this size are parsed whole; bigger ones streamed. */
export const WHOLE_PARSE_BYTES = 4 * 1024 * 1024

/** Collects up to WHOLE_PARSE_BYTES, then goes on streamed. */
export function selectedJson (selection: Selection): StreamedJson {
  let chunks: Uint8Array[] | undefined = []
  let size = 0
  let streamed: StreamedJson | undefined
  return {
    write (chunk) {
      if (streamed !== undefined) return streamed.write(chunk)
      chunks?.push(chunk)
      size += chunk.length
      if (size <= WHOLE_PARSE_BYTES) return
      streamed = streamedJson(selection)
      for (const held of chunks ?? []) streamed.write(held)
      chunks = undefined
    },
    end () {
      if (streamed !== undefined) return streamed.end()
      let json: unknown
      try {
        json = JSON.parse(Buffer.concat(chunks ?? []).toString('utf8'))
      } catch {
        return undefined
      }
      for (const path of selection.paths) visit(json, path.split('.').slice(1), '$', selection.keep)
      return selection.result()
    }
  }
}

/** Hands `keep` what `steps` (`state`, `*`) select in a parsed value, as the streaming parser would. */
function visit (value: unknown, steps: string[], at: string, keep: Selection['keep']): void {
  const [step, ...rest] = steps
  if (step === undefined) return keep(value, at)
  if (step === '*') {
    if (Array.isArray(value)) value.forEach((element, index) => { visit(element, rest, `${at}.${index}`, keep) })
    return
  }
  if (isObject(value) && Object.hasOwn(value, step)) visit(value[step], rest, `${at}.${step}`, keep)
}

export function streamedJson (selection: Selection): StreamedJson {
  const parser = new JSONParser({ paths: selection.paths, keepStack: false })
  let broken = false
  parser.onValue = ({ value, key, stack }) => {
    const path = ['$', ...stack.slice(1).map((element) => element.key), key].filter((part) => part !== undefined).join('.')
    selection.keep(value, path)
  }
  parser.onError = () => { broken = true }
  return {
    write (chunk) {
      if (!broken) parser.write(chunk)
    },
    end () {
      if (!broken && !parser.isEnded) parser.end()
      return broken ? undefined : selection.result()
    }
  }
}

/** The elements of the answer's top-level list `field`, one by one; `{}` as the result when there is no such list. */
function listSelection (field: string, onElement: (value: unknown) => void, result: () => Record<string, unknown>): Selection {
  let listed = false
  return {
    paths: [`$.${field}.*`, `$.${field}`],
    keep (value, path) {
      if (path === `$.${field}`) listed = Array.isArray(value)
      else onElement(value)
    },
    result: () => listed ? result() : {}
  }
}

/** A room state answer (`{"state": [events]}`) that keeps only the events `wanted` names. */
export function stateSelection (wanted: (event: { type: string, state_key: string, content: Record<string, unknown> }) => boolean): SelectionFactory {
  return () => {
    const state: unknown[] = []
    return listSelection('state', (value) => { if (isStateEvent(value) && wanted(value)) state.push(value) }, () => ({ state }))
  }
}

/** A members answer (`{"members": [...], "total"}`) keeping the members from `offset` on, `limit` of them, and the count. */
export function membersSelection (offset: number, limit: number): SelectionFactory {
  return () => {
    const members: string[] = []
    let seen = 0
    return listSelection('members', (value) => {
      if (typeof value !== 'string') return
      if (seen >= offset && members.length < limit) members.push(value)
      seen++
    }, () => ({ members, total: seen }))
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

function isStateEvent (value: unknown): value is { type: string, state_key: string, content: Record<string, unknown> } {
  return isObject(value) && typeof value.type === 'string' && typeof value.state_key === 'string' && isObject(value.content)
}
