/**
 * Signed checkpoints of the audit chain: notes in the C2SP signed-note format
 * (https://c2sp.org/signed-note), with a body shaped like a tlog-checkpoint
 * (https://c2sp.org/tlog-checkpoint), adapted to a hash chain:
 *
 *   synapse-admin-gateway/audit                   origin (also the key name)
 *   1042                                          records in the chain = seq of its head
 *   3q2+7w4bWc0mUGi4xqkx3T1JkCBTY2eWKKBwuQqBY8c=  the head's `hash`, base64 (not a Merkle root)
 *   time 2026-12-05T07:41:00.123Z                 when it was signed (an extension line)
 *                                                 (blank line)
 *   — synapse-admin-gateway/audit <base64(key ID ‖ Ed25519 signature)>
 *
 * The signature covers the body including its final newline. The key ID is the first 4 bytes of
 * SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key), as the spec recommends for Ed25519.
 * A checkpoint file holds one note after another, each followed by a blank line.
 * Signing and verifying are node:crypto's Ed25519; nothing here is cryptography of its own.
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto'

export const CHECKPOINT_ORIGIN = 'synapse-admin-gateway/audit'
const SIGNATURE_PREFIX = '\u2014 '
const ED25519_SIGNATURE_TYPE = 0x01
const KEY_ID_LENGTH = 4
const ED25519_SIGNATURE_LENGTH = 64

/** The head of the chain a checkpoint vouches for. */
export interface CheckpointHead { seq: number, hash: string, time: string }

function rawPublicKey (key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' })
  return Buffer.from(jwk.x as string, 'base64url')
}

/** The signed-note key ID of an Ed25519 key (public, or the public half of a private one). */
export function checkpointKeyId (key: KeyObject, keyName = CHECKPOINT_ORIGIN): Buffer {
  const hash = createHash('sha256')
    .update(`${keyName}\n`)
    .update(Buffer.from([ED25519_SIGNATURE_TYPE]))
    .update(rawPublicKey(key))
    .digest()
  return hash.subarray(0, KEY_ID_LENGTH)
}

/** Why a KeyObject cannot sign or verify checkpoints, or undefined when it can. */
export function notAnEd25519Key (key: KeyObject): string | undefined {
  return key.asymmetricKeyType === 'ed25519' ? undefined : `an ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`
}

/** One note, with its trailing blank line, ready to append to the checkpoint file. */
export function signCheckpoint (head: CheckpointHead, privateKey: KeyObject): string {
  const body = `${CHECKPOINT_ORIGIN}\n${head.seq}\n${Buffer.from(head.hash, 'hex').toString('base64')}\ntime ${head.time}\n`
  const signature = sign(null, Buffer.from(body), privateKey)
  const keyId = checkpointKeyId(privateKey)
  return `${body}\n${SIGNATURE_PREFIX}${CHECKPOINT_ORIGIN} ${Buffer.concat([keyId, signature]).toString('base64')}\n\n`
}

export type ParsedCheckpoint =
  | { line: number, ok: true, head: CheckpointHead }
  | { line: number, ok: false, kind: 'forged' | 'malformed', detail: string }

interface Block { line: number, lines: string[] }

/** Blocks of non-empty lines, with the line number each starts at. */
function blocksOf (text: string): Block[] {
  const blocks: Block[] = []
  let current: Block | undefined
  text.split('\n').forEach((line, index) => {
    if (line === '') {
      current = undefined
      return
    }
    if (current === undefined) {
      current = { line: index + 1, lines: [] }
      blocks.push(current)
    }
    current.lines.push(line)
  })
  return blocks
}

const isSignatureBlock = (block: Block) => block.lines.every((line) => line.startsWith(SIGNATURE_PREFIX))

function headOf (body: string[]): CheckpointHead | string {
  const [origin, size, hash, ...extensions] = body
  if (origin !== CHECKPOINT_ORIGIN) return `its origin is not ${CHECKPOINT_ORIGIN}`
  if (size === undefined || !/^[1-9][0-9]{0,14}$/.test(size)) return 'its second line is not a record count'
  const hashBytes = Buffer.from(hash ?? '', 'base64')
  if (hashBytes.length !== 32 || hashBytes.toString('base64') !== hash) return 'its third line is not a base64 SHA-256 hash'
  const time = extensions.find((line) => line.startsWith('time '))?.slice(5) ?? ''
  return { seq: Number(size), hash: hashBytes.toString('hex'), time }
}

/** Whether one of the note's signature lines is a valid signature by this key over the body. */
function signedBy (body: string, signatures: string[], publicKey: KeyObject): 'valid' | 'invalid' | 'absent' {
  const keyId = checkpointKeyId(publicKey)
  for (const line of signatures) {
    const [name, encoded, extra] = line.slice(SIGNATURE_PREFIX.length).split(' ')
    if (name !== CHECKPOINT_ORIGIN || encoded === undefined || extra !== undefined) continue
    const bytes = Buffer.from(encoded, 'base64')
    if (!bytes.subarray(0, KEY_ID_LENGTH).equals(keyId)) continue
    // A signature line from this key decides: valid, or the note is rejected.
    const signature = bytes.subarray(KEY_ID_LENGTH)
    return signature.length === ED25519_SIGNATURE_LENGTH && verify(null, Buffer.from(body), publicKey, signature) ? 'valid' : 'invalid'
  }
  return 'absent'
}

/** Every note of a checkpoint file, oldest first: its head when its signature verifies with this key. */
export function readCheckpoints (text: string, publicKey: KeyObject): ParsedCheckpoint[] {
  const checkpoints: ParsedCheckpoint[] = []
  const blocks = blocksOf(text)
  for (let i = 0; i < blocks.length; i++) {
    const block = blocks[i] as Block
    if (isSignatureBlock(block)) {
      checkpoints.push({ line: block.line, ok: false, kind: 'malformed', detail: 'signature lines without a checkpoint before them' })
      continue
    }
    const next = blocks[i + 1]
    if (next === undefined || !isSignatureBlock(next)) {
      checkpoints.push({ line: block.line, ok: false, kind: 'malformed', detail: 'a checkpoint without a signature (cut short, or not a checkpoint)' })
      continue
    }
    i += 1
    const head = headOf(block.lines)
    if (typeof head === 'string') {
      checkpoints.push({ line: block.line, ok: false, kind: 'malformed', detail: `not a checkpoint of this gateway: ${head}` })
      continue
    }
    const signed = signedBy(`${block.lines.join('\n')}\n`, next.lines, publicKey)
    if (signed === 'valid') checkpoints.push({ line: block.line, ok: true, head })
    else {
      checkpoints.push({
        line: block.line,
        ok: false,
        kind: 'forged',
        detail: signed === 'invalid'
          ? 'the signature does not verify with this public key (forged, or edited after signing)'
          : `not signed by this public key (key ID ${checkpointKeyId(publicKey).toString('hex')})`
      })
    }
  }
  return checkpoints
}
