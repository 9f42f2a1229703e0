/**
 * Helpers for the action tests (test/actions-*.test.ts): a gateway in front of the simulated
 * homeserver seeded with the actions recording's rooms, a policy that allows the test caller
 * every action, a request helper for any method, and views of what changed in Synapse.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { request } from 'undici'
import type { Endpoint, HomeserverOptions, SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { startHarness, type Harness } from './harness.js'

interface Tap { after: (fn: () => unknown) => void }

export const enc = encodeURIComponent

/** Synapse calls that change something; a dry run or a refusal before Synapse makes none. */
export const CHANGING_CALLS: Endpoint[] = ['join', 'kick', 'make_room_admin', 'leave', 'login_as', 'logout']

/** A policy file that lets the role matrix-admin (the test tokens' role) do every action. */
export function allowAllPolicy (t: Tap): string {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-policy-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, 'rules:\n  - name: all\n    roles: [matrix-admin]\n    actions: ["*"]\n')
  return file
}

export interface ActionResponse { status: number, headers: Record<string, string | string[] | undefined>, body: any, text: string, requestId: string }

export interface CallOptions {
  /** A JSON body (sent with content-type application/json). */
  body?: unknown
  /** Sent as it is, with the content-type in `headers` (or application/json). */
  rawBody?: string
  /** null: no Authorization header; unset: a valid matrix-admin token. */
  token?: string | null
  headers?: Record<string, string>
}

export interface ActionHarness extends Harness {
  /** Any request to the gateway; each gets its own x-request-id, to find its audit records. */
  call: (method: 'GET' | 'POST' | 'DELETE' | 'PUT', path: string, options?: CallOptions) => Promise<ActionResponse>
  /** Every audit record (intent and result) of one request, in order. */
  recordsOf: (requestId: string) => Array<Record<string, any>>
}

/** The gateway with the actions fixture and (unless `policy: false`) the allow-all policy. */
export async function startActionHarness (t: Tap, options: { env?: Record<string, string>, policy?: boolean, homeserver?: HomeserverOptions } = {}): Promise<ActionHarness> {
  const env: Record<string, string> = { ...(options.policy === false ? {} : { POLICY_FILE: allowAllPolicy(t) }), ...options.env }
  const h = await startHarness(t, { env, homeserver: { fixture: 'actions', ...options.homeserver } })
  return {
    ...h,
    async call (method, path, callOptions = {}) {
      const requestId = randomUUID()
      const headers: Record<string, string> = { 'x-request-id': requestId, ...callOptions.headers }
      const bearer = callOptions.token === undefined ? h.token() : callOptions.token
      if (bearer !== null) headers.authorization = `Bearer ${bearer}`
      let body: string | undefined
      if (callOptions.rawBody !== undefined) {
        body = callOptions.rawBody
        headers['content-type'] ??= 'application/json'
      } else if (callOptions.body !== undefined) {
        body = JSON.stringify(callOptions.body)
        headers['content-type'] ??= 'application/json'
      }
      const response = await request(`${h.url}${path}`, { method, headers, body })
      const text = await response.body.text()
      let parsed: unknown
      try { parsed = JSON.parse(text) } catch { parsed = undefined }
      return { status: response.statusCode, headers: response.headers, body: parsed, text, requestId }
    },
    recordsOf: (requestId) => h.auditRecords().filter((record) => record.request_id === requestId)
  }
}

/** The homeserver's rooms and users as plain JSON, to compare before and after (event IDs included). */
export function stateOf (homeserver: SimulatedHomeserver): string {
  const rooms = [...homeserver.state.rooms.values()].map((room) => ({
    ...room,
    members: [...room.members],
    powerLevels: [...room.powerLevels],
    memberEvents: [...room.memberEvents]
  }))
  // lastSeenTs moves with every call the admin token makes; it is not a change anyone made.
  const users = [...homeserver.state.users].map(([userId, { lastSeenTs: _seen, ...user }]) => [userId, user])
  return JSON.stringify({ rooms, users, nextEvent: homeserver.state.nextEvent })
}

/** The Synapse calls made since `from` (an index into homeserver.calls), by endpoint. */
export const callsSince = (homeserver: SimulatedHomeserver, from: number): Endpoint[] => homeserver.calls.slice(from).map((call) => call.endpoint)

/** What a room's member event for a user says now. */
export function memberOf (homeserver: SimulatedHomeserver, roomId: string, userId: string) {
  const room = homeserver.state.rooms.get(roomId)
  return { membership: room?.members.get(userId), event: room?.memberEvents.get(userId) }
}
