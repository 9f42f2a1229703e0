/**
 * The seven account actions as the gateway's routes (contract, "Version 3" → "Account actions"),
 * and a dry run checked against the real call it predicts.
 */
import type { Test } from 'tap'
import { segment, type Answer, type Gateway } from './gateway.js'

export type AccountActionName = 'user.lock' | 'user.unlock' | 'user.suspend' | 'user.unsuspend' | 'user.logout' | 'user.password.reset' | 'user.deactivate'

export interface AccountCall {
  action: AccountActionName
  method: 'PUT' | 'DELETE' | 'POST'
  path: string
  body?: Record<string, unknown>
}

const ROUTES: Record<AccountActionName, { method: AccountCall['method'], suffix: string }> = {
  'user.lock': { method: 'PUT', suffix: 'lock' },
  'user.unlock': { method: 'DELETE', suffix: 'lock' },
  'user.suspend': { method: 'PUT', suffix: 'suspension' },
  'user.unsuspend': { method: 'DELETE', suffix: 'suspension' },
  'user.logout': { method: 'POST', suffix: 'logout' },
  'user.password.reset': { method: 'POST', suffix: 'password' },
  'user.deactivate': { method: 'POST', suffix: 'deactivate' }
}

export const ACCOUNT_ACTIONS = Object.keys(ROUTES) as AccountActionName[]

/** The single route of `action` on `userId`, with its body fields (if any). */
export function accountCall (action: AccountActionName, userId: string, body?: Record<string, unknown>): AccountCall {
  const { method, suffix } = ROUTES[action]
  return { action, method, path: `/v1/users/${segment(userId)}/${suffix}`, ...(body === undefined ? {} : { body }) }
}

export async function send (gateway: Gateway, call: AccountCall, query = ''): Promise<Answer> {
  return await gateway.call(call.method, `${call.path}${query}`, call.body === undefined ? {} : { body: call.body })
}

export async function sendIdempotent (gateway: Gateway, call: AccountCall, key: string): Promise<Answer> {
  return await gateway.call(call.method, call.path, { ...(call.body === undefined ? {} : { body: call.body }), headers: { 'idempotency-key': key } })
}

/** "PUT /v1/users/…/lock {…} answered 200 {…}", for assertion messages. */
export const said = (call: AccountCall, answer: Answer, query = '') =>
  `${call.method} ${call.path}${query}${call.body === undefined ? '' : ` ${JSON.stringify(call.body)}`} answered ${answer.status} ${JSON.stringify(answer.body)}`

/**
 * `?dry_run=true` first: it answers 200, is audited as a dry run, and changes nothing (`unchanged`
 * checks that by effect on Synapse); then the real call, whose success or code the dry run must
 * have predicted. Answers the real call's answer.
 */
export async function dryRunThenReal (t: Test, gateway: Gateway, call: AccountCall, unchanged: () => Promise<void>): Promise<Answer> {
  const dry = await send(gateway, call, '?dry_run=true')
  const dryText = said(call, dry, '?dry_run=true')
  t.equal(dry.status, 200, `a dry run answers 200 (${dryText})`)
  t.equal(dry.body?.dry_run, true, 'dry_run: true')
  t.ok(Array.isArray(dry.body?.checks), `with its checks (${dryText})`)
  t.ok(gateway.audit().some((record) => record.request_id === dry.headers['x-request-id'] && record.outcome === 'dry_run'), 'the dry run is audited as a dry run')
  await unchanged()
  const real = await send(gateway, call)
  const succeeded = real.status >= 200 && real.status < 300
  t.equal(dry.body?.would_succeed, succeeded, `would_succeed is what the real call did (${said(call, real)})`)
  t.equal(dry.body?.code, succeeded ? undefined : real.body?.code, 'the dry run\'s code is the real call\'s')
  return real
}
