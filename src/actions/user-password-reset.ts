import { randomInt } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import { Reason, UserParams } from '../schemas.js'
import { ACCOUNT_CALLS, namesIssuer, resetPasswordAnswer } from '../synapse/accounts.js'
import type { TrackedSynapse } from '../synapse/calls.js'
import { defineAction } from './action.js'
import { ACCOUNT_PROBLEMS, accountChecks } from './account-checks.js'

/** No look-alikes (0/O, 1/l/I): a generated password is read out or typed by a person. */
const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789'
const GROUPS = 4
const GROUP_LENGTH = 6

/**
 * 24 characters from 57 (about 140 bits) in four groups joined by "-": 27 characters with an
 * upper-case letter, a lower-case letter, a digit and a symbol, so any password policy Synapse may
 * enforce accepts it.
 */
export function generatePassword (): string {
  for (;;) {
    const groups = Array.from({ length: GROUPS }, () => Array.from({ length: GROUP_LENGTH }, () => ALPHABET[randomInt(ALPHABET.length)]).join(''))
    const password = groups.join('-')
    if (/[A-Z]/.test(password) && /[a-z]/.test(password) && /[0-9]/.test(password)) return password
  }
}

const ResetBody = Type.Object({
  new_password: Type.Optional(Type.String({ minLength: 12, maxLength: 512, description: 'Text of at least 12 and at most 512 characters; leave it out to have the gateway generate one.' })),
  logout_devices: Type.Optional(Type.Boolean({ description: 'End every session of the user (default true).' })),
  reason: Type.Optional(Reason)
}, { additionalProperties: false })

interface ResetInput { new_password?: string, logout_devices?: boolean }

/** MAS (MSC3861): Synapse then names the issuer of its authentication metadata. */
async function delegatedToMas (synapse: TrackedSynapse): Promise<boolean> {
  if (namesIssuer(await synapse.send(ACCOUNT_CALLS.authMetadata()))) return true
  return namesIssuer(await synapse.send(ACCOUNT_CALLS.authIssuer()))
}

/** user.password.reset: Synapse's reset_password, with a password the caller gives or one generated here. */
export const userPasswordReset = defineAction({
  name: 'user.password.reset',
  method: 'POST',
  url: '/v1/users/:userId/password',
  acting: true,
  operationId: 'resetUserPassword',
  summary: 'Reset a user\'s password',
  description: 'Sets a new password: the caller\'s `new_password` (at least 12 characters), or, without one, a generated one (27 characters) returned once in `password`. With `logout_devices` (default true) every session of the user ends. The password never appears in the audit, logs, metrics or errors, and an idempotent replay answers without it. Never the gateway\'s account or a server admin; a deactivated user is 409. Under MAS-delegated authentication: 501 delegated_to_mas.',
  params: UserParams,
  body: Type.Union([ResetBody, Type.Null()]) as unknown as typeof ResetBody,
  result: Type.Object({
    user_id: Type.String(),
    password: Type.Optional(Type.String({ description: 'The generated password, only when none was given; shown once (a replay omits it).' }))
  }),
  problems: [...ACCOUNT_PROBLEMS, 'user_deactivated',
    'password_rejected', 'delegated_to_mas', 'payload_too_large', 'unsupported_media_type'],
  answeredOnce: ['password'],
  checks: accountChecks({ refuseDeactivated: true }),

  async run (context, { userId }) {
    const user = userId as string
    const input = (context.body ?? {}) as ResetInput
    const password = input.new_password ?? generatePassword()
    const response = await context.synapse.send(ACCOUNT_CALLS.resetPassword(user, password, input.logout_devices ?? true))
    await resetPasswordAnswer(response, async () => await delegatedToMas(context.synapse))
    return input.new_password === undefined ? { user_id: user, password } : { user_id: user }
  }
})
