import type { Redis } from 'ioredis'
import { unavailable } from '../state/unavailable.js'
import {
  ApprovalsFullError, compareNewestFirst, decodeCursor, effectiveStatus, encodeCursor, isGone, isVisibleTo, newApprovalId, personDigest, personKey,
  type Approval, type ApprovalDecision, type ApprovalStore, type ApprovalStoreLimits, type ApproveOutcome, type Decider, type DenyOutcome, type ExecutionResult
} from './types.js'

/*
 * Layout under the prefix P (default `sag:appr:`), all maintained by the scripts below so counts
 * and bytes stay exact (no Redis key expiry):
 *   P r:<id>         hash: json (what never changes), status, decisions (JSON array), approvals,
 *                    need, requester (person key), digest, roles (JSON), bytes, expires, result,
 *                    by:<person key> (one per approver)
 *   P all            zset id -> created_at          (count bound)
 *   P pending        zset id -> expires_at          (expiry sweep)
 *   P ended          zset id -> ended_at + TTL      (eviction, oldest ended first, and purge)
 *   P by:<digest>    zset id -> created_at          (list: what a caller requested)
 *   P role:<role>    zset id -> created_at          (list: what a caller's roles may decide)
 *   P bytes          counter                        (bytes bound)
 * Keys are built inside the scripts: one Redis (or Valkey) node, not Redis Cluster.
 */
const COMMON = `
local p = ARGV[1]
local function drop(id)
  local key = p .. 'r:' .. id
  local f = redis.call('HMGET', key, 'digest', 'roles', 'bytes')
  redis.call('ZREM', p .. 'all', id)
  redis.call('ZREM', p .. 'pending', id)
  redis.call('ZREM', p .. 'ended', id)
  if f[1] then redis.call('ZREM', p .. 'by:' .. f[1], id) end
  if f[2] then for _, role in ipairs(cjson.decode(f[2])) do redis.call('ZREM', p .. 'role:' .. role, id) end end
  if f[3] then redis.call('DECRBY', p .. 'bytes', f[3]) end
  redis.call('DEL', key)
end
local function purge(now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'ended', '-inf', now, 'LIMIT', 0, 100)) do drop(id) end
end
local function finish(key, id, status, ended, ttl)
  redis.call('HSET', key, 'status', status)
  redis.call('ZREM', p .. 'pending', id)
  redis.call('ZADD', p .. 'ended', ended + ttl, id)
end
local function grow(key, by)
  redis.call('HINCRBY', key, 'bytes', by)
  redis.call('INCRBY', p .. 'bytes', by)
end
local function reply(kind, flag, key)
  local v = redis.call('HMGET', key, 'json', 'status', 'decisions', 'result')
  return {kind, flag, v[1], v[2], v[3], v[4]}
end
`

// ARGV: prefix, id, now, ttl ms, max entries, max bytes, json, bytes, expires, requester key, digest, roles JSON, need
const CREATE = `${COMMON}
local id, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local maxEntries, maxBytes, size = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[8])
purge(now)
while redis.call('ZCARD', p .. 'all') >= maxEntries or tonumber(redis.call('GET', p .. 'bytes') or '0') + size > maxBytes do
  local oldest = redis.call('ZRANGE', p .. 'ended', 0, 0)
  if #oldest == 0 then return 0 end
  drop(oldest[1])
end
local key = p .. 'r:' .. id
redis.call('HSET', key, 'json', ARGV[7], 'status', 'pending', 'decisions', '[]', 'approvals', 0, 'need', ARGV[13],
  'requester', ARGV[10], 'digest', ARGV[11], 'roles', ARGV[12], 'bytes', size, 'expires', ARGV[9])
redis.call('ZADD', p .. 'all', now, id)
redis.call('ZADD', p .. 'pending', ARGV[9], id)
redis.call('ZADD', p .. 'by:' .. ARGV[11], now, id)
for _, role in ipairs(cjson.decode(ARGV[12])) do redis.call('ZADD', p .. 'role:' .. role, now, id) end
redis.call('INCRBY', p .. 'bytes', size)
return 1
`

// ARGV: prefix, id, now, ttl ms, decider key, decision JSON, 'approve' | 'deny'
const DECIDE = `${COMMON}
local id, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local key = p .. 'r:' .. id
if redis.call('EXISTS', key) == 0 then return {'not_found'} end
local s = redis.call('HMGET', key, 'status', 'expires', 'requester', 'need')
local expires = tonumber(s[2])
if s[1] == 'pending' and now >= expires then
  finish(key, id, 'expired', expires, ttl)
  return reply('expired', 1, key)
end
if s[1] == 'expired' then return reply('expired', 0, key) end
if s[1] ~= 'pending' then return reply('decided', 0, key) end
if ARGV[7] == 'approve' then
  if s[3] == ARGV[5] then return reply('self_approval', 0, key) end
  if redis.call('HEXISTS', key, 'by:' .. ARGV[5]) == 1 then return reply('repeat', 0, key) end
end
local d = redis.call('HGET', key, 'decisions')
if d == '[]' then d = '[' .. ARGV[6] .. ']' else d = string.sub(d, 1, -2) .. ',' .. ARGV[6] .. ']' end
redis.call('HSET', key, 'decisions', d, 'by:' .. ARGV[5], '1')
grow(key, #ARGV[6] + #ARGV[5] + 8)
if ARGV[7] == 'deny' then
  finish(key, id, 'denied', now, ttl)
  return reply('denied', 0, key)
end
if redis.call('HINCRBY', key, 'approvals', 1) >= tonumber(s[4]) then
  finish(key, id, 'approved', now, ttl)
  return reply('execute', 0, key)
end
return reply('recorded', 0, key)
`

// ARGV: prefix, id, result JSON
const COMPLETE = `${COMMON}
local key = p .. 'r:' .. ARGV[2]
if redis.call('HGET', key, 'status') ~= 'approved' or redis.call('HEXISTS', key, 'result') == 1 then return 0 end
redis.call('HSET', key, 'result', ARGV[3])
grow(key, #ARGV[3])
return 1
`

// ARGV: prefix, now, ttl ms, max
const EXPIRE_DUE = `${COMMON}
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
purge(now)
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'pending', '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))) do
  local key = p .. 'r:' .. id
  local s = redis.call('HMGET', key, 'status', 'expires')
  if s[1] == 'pending' then
    finish(key, id, 'expired', tonumber(s[2]), ttl)
    local v = reply('', 0, key)
    for i = 3, 6 do table.insert(out, v[i]) end
  else
    redis.call('ZREM', p .. 'pending', id)
  end
end
return out
`

type Field = string | null
type DecideReply = [ApproveOutcome['kind'] | DenyOutcome['kind'], number?, Field?, Field?, Field?, Field?]

interface ApprovalCommands {
  gatewayApprovalCreate: (...args: Array<string | number>) => Promise<number>
  gatewayApprovalDecide: (...args: Array<string | number>) => Promise<DecideReply>
  gatewayApprovalComplete: (...args: Array<string | number>) => Promise<number>
  gatewayApprovalExpireDue: (...args: Array<string | number>) => Promise<Field[]>
}

type StaticPart = Omit<Approval, 'status' | 'decisions' | 'result'>

function approvalFrom (json: Field | undefined, status: Field | undefined, decisions: Field | undefined, result: Field | undefined): Approval | undefined {
  if (typeof json !== 'string' || typeof status !== 'string') return undefined
  return {
    ...(JSON.parse(json) as StaticPart),
    status: status as Approval['status'],
    decisions: JSON.parse(decisions ?? '[]') as ApprovalDecision[],
    result: typeof result === 'string' ? JSON.parse(result) as ExecutionResult : null
  }
}

export interface RedisApprovalStoreOptions extends ApprovalStoreLimits {
  /** Prefix of every key (default `sag:appr:`); the bounds hold per prefix. */
  prefix?: string
}

/**
 * Approvals in Redis, shared by every replica: each change is one Lua script, so of two approvals
 * completing the count at the same moment on two replicas exactly one gets `execute`. Any failure
 * to reach Redis rejects with StateUnavailableError. The client is the caller's: close() leaves it open.
 */
export function createRedisApprovalStore (redis: Redis, options: RedisApprovalStoreOptions): ApprovalStore {
  const prefix = options.prefix ?? 'sag:appr:'
  const now = options.now ?? Date.now
  const ttlMs = options.ttlS * 1000
  redis.defineCommand('gatewayApprovalCreate', { numberOfKeys: 0, lua: CREATE })
  redis.defineCommand('gatewayApprovalDecide', { numberOfKeys: 0, lua: DECIDE })
  redis.defineCommand('gatewayApprovalComplete', { numberOfKeys: 0, lua: COMPLETE })
  redis.defineCommand('gatewayApprovalExpireDue', { numberOfKeys: 0, lua: EXPIRE_DUE })
  const commands = redis as unknown as ApprovalCommands

  async function run<T> (command: () => Promise<T>): Promise<T> {
    try {
      return await command()
    } catch (error) {
      throw unavailable(error)
    }
  }

  async function read (ids: string[]): Promise<Array<Approval | undefined>> {
    if (ids.length === 0) return []
    const pipeline = redis.pipeline()
    for (const id of ids) pipeline.hmget(`${prefix}r:${id}`, 'json', 'status', 'decisions', 'result')
    const replies = await run(async () => await pipeline.exec()) ?? []
    return replies.map(([error, fields]) => {
      if (error !== null) throw unavailable(error)
      const [json, status, decisions, result] = fields as Field[]
      return approvalFrom(json, status, decisions, result)
    })
  }

  async function decide (id: string, decider: Decider, kind: ApprovalDecision['decision'], reason: string | null): Promise<ApproveOutcome | DenyOutcome> {
    const at = now()
    const given: ApprovalDecision = { sub: decider.sub, iss: decider.iss, decision: kind, reason, roles: [...decider.roles], at }
    const [outcome, flag, ...fields] = await run(() => commands.gatewayApprovalDecide(prefix, id, at, ttlMs, personKey(decider), JSON.stringify(given), kind))
    if (outcome === 'not_found') return { kind: 'not_found' }
    const approval = approvalFrom(...fields) as Approval
    if (outcome === 'expired') return { kind: 'expired', approval, expiredNow: flag === 1 }
    return { kind: outcome, approval } as ApproveOutcome | DenyOutcome
  }

  return {
    async create (input) {
      const at = now()
      const approval: Approval = { id: newApprovalId(), status: 'pending', ...structuredClone(input), decisions: [], created_at: at, expires_at: at + ttlMs, result: null }
      const { status: _status, decisions: _decisions, result: _result, ...unchanging } = approval
      const json = JSON.stringify(unchanging)
      const size = Buffer.byteLength(json) + 256
      const roles = JSON.stringify(input.required.roles)
      const created = await run(() => commands.gatewayApprovalCreate(prefix, approval.id, at, ttlMs, options.maxEntries, options.maxBytes, json, size,
        approval.expires_at, personKey(input.requested_by), personDigest(input.requested_by), roles, input.required.count))
      if (created !== 1) throw new ApprovalsFullError()
      return approval
    },
    async get (id) {
      const [approval] = await read([id])
      const at = now()
      return approval === undefined || isGone(approval, at, ttlMs) ? undefined : { ...approval, status: effectiveStatus(approval, at) }
    },
    async list (query) {
      const at = now()
      const after = query.from === undefined ? undefined : decodeCursor(query.from)
      const keys = [`${prefix}by:${personDigest(query.requester)}`, ...[...new Set(query.roles)].map((role) => `${prefix}role:${role}`)]
      const pipeline = redis.pipeline()
      const max = after === undefined ? '+inf' : String(after.created_at)
      for (const key of keys) pipeline.zrevrangebyscore(key, max, '-inf', 'WITHSCORES', 'LIMIT', 0, options.maxEntries)
      const replies = await run(async () => await pipeline.exec()) ?? []
      const candidates = new Map<string, { id: string, created_at: number }>()
      for (const [error, flat] of replies) {
        if (error !== null) throw unavailable(error)
        const list = flat as string[]
        for (let i = 0; i < list.length; i += 2) candidates.set(list[i] as string, { id: list[i] as string, created_at: Number(list[i + 1]) })
      }
      const ordered = [...candidates.values()]
        .filter((candidate) => after === undefined || compareNewestFirst(after, candidate) < 0)
        .sort(compareNewestFirst)
      const page: Approval[] = []
      const batch = Math.max(query.limit + 1, 50)
      for (let i = 0; i < ordered.length && page.length <= query.limit; i += batch) {
        for (const approval of await read(ordered.slice(i, i + batch).map((candidate) => candidate.id))) {
          if (approval === undefined || isGone(approval, at, ttlMs)) continue
          if (!isVisibleTo(approval, { ...query.requester, org: query.org, roles: query.roles })) continue
          const status = effectiveStatus(approval, at)
          if (query.status !== undefined && status !== query.status) continue
          page.push({ ...approval, status })
          if (page.length > query.limit) break
        }
      }
      const more = page.length > query.limit
      const approvals = page.slice(0, query.limit)
      const last = approvals.at(-1)
      return { approvals, next: more && last !== undefined ? encodeCursor(last) : undefined }
    },
    approve: async (id, decider, reason) => await decide(id, decider, 'approve', reason) as ApproveOutcome,
    deny: async (id, decider, reason) => await decide(id, decider, 'deny', reason) as DenyOutcome,
    async complete (id, result) {
      await run(() => commands.gatewayApprovalComplete(prefix, id, JSON.stringify({ ...result, at: now() })))
    },
    async expireDue (max = 100) {
      const flat = await run(() => commands.gatewayApprovalExpireDue(prefix, now(), ttlMs, max))
      const expired: Approval[] = []
      for (let i = 0; i < flat.length; i += 4) {
        const approval = approvalFrom(flat[i], flat[i + 1], flat[i + 2], flat[i + 3])
        if (approval !== undefined) expired.push(approval)
      }
      return expired
    },
    async close () {}
  }
}
