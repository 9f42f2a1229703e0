import {
  ApprovalsFullError, compareNewestFirst, decodeCursor, effectiveStatus, encodeCursor, endedAt, isGone, isVisibleTo, newApprovalId, samePerson,
  type Approval, type ApprovalDecision, type ApprovalStore, type ApprovalStoreLimits, type ApproveOutcome, type Decider, type DecisionRefusal, type DenyOutcome, type ListQuery
} from './types.js'

interface Entry { approval: Approval, bytes: number }

const sizeOf = (approval: Approval): number => Buffer.byteLength(JSON.stringify(approval))

/**
 * Approvals of this replica only, lost on restart. Bounded by APPROVAL_MAX_ENTRIES and
 * APPROVAL_MAX_BYTES: ended approvals (approved, denied, expired) go first, oldest first, and
 * are dropped anyway APPROVAL_TTL_S after they ended; when only pending ones are left, create()
 * refuses (ApprovalsFullError) instead of dropping one somebody waits on.
 */
export function createMemoryApprovalStore (limits: ApprovalStoreLimits): ApprovalStore {
  const now = limits.now ?? Date.now
  const ttlMs = limits.ttlS * 1000
  // Insertion order is creation order: eviction walks it oldest first.
  const entries = new Map<string, Entry>()
  let bytes = 0

  function drop (id: string): void {
    const entry = entries.get(id)
    if (entry === undefined) return
    entries.delete(id)
    bytes -= entry.bytes
  }
  function resize (entry: Entry): void {
    const size = sizeOf(entry.approval)
    bytes += size - entry.bytes
    entry.bytes = size
  }
  function purge (at: number): void {
    for (const [id, entry] of entries) {
      if (isGone(entry.approval, at, ttlMs)) drop(id)
    }
  }
  function live (id: string): Entry | undefined {
    const entry = entries.get(id)
    if (entry === undefined) return undefined
    if (isGone(entry.approval, now(), ttlMs)) {
      drop(id)
      return undefined
    }
    return entry
  }
  const copy = (approval: Approval): Approval => structuredClone(approval)

  /** The refusals approve and deny share, and the lazy expiry. */
  function refusal (entry: Entry | undefined, at: number): DecisionRefusal | undefined {
    if (entry === undefined) return { kind: 'not_found' }
    const { approval } = entry
    if (approval.status === 'pending' && at >= approval.expires_at) {
      approval.status = 'expired'
      return { kind: 'expired', approval: copy(approval), expiredNow: true }
    }
    if (approval.status === 'expired') return { kind: 'expired', approval: copy(approval), expiredNow: false }
    if (approval.status !== 'pending') return { kind: 'decided', approval: copy(approval) }
    return undefined
  }
  function decide (id: string, decider: Decider, kind: ApprovalDecision['decision'], reason: string | null): ApproveOutcome | DenyOutcome {
    const at = now()
    const entry = live(id)
    const refused = refusal(entry, at)
    if (refused !== undefined) return refused
    const { approval } = entry as Entry
    if (kind === 'approve') {
      if (samePerson(approval.requested_by, decider)) return { kind: 'self_approval', approval: copy(approval) }
      if (approval.decisions.some((given) => samePerson(given, decider))) return { kind: 'repeat', approval: copy(approval) }
    }
    // While pending, every decision so far is an approval: one denial ends it.
    approval.decisions.push({ sub: decider.sub, iss: decider.iss, decision: kind, reason, roles: [...decider.roles], at })
    const complete = approval.decisions.length >= approval.required.count
    approval.status = kind === 'deny' ? 'denied' : complete ? 'approved' : 'pending'
    resize(entry as Entry)
    return { kind: kind === 'deny' ? 'denied' : complete ? 'execute' : 'recorded', approval: copy(approval) }
  }

  return {
    async create (input) {
      const at = now()
      purge(at)
      const approval: Approval = { id: newApprovalId(), status: 'pending', ...structuredClone(input), decisions: [], created_at: at, expires_at: at + ttlMs, result: null }
      const size = sizeOf(approval)
      for (const [id, entry] of entries) {
        if (entries.size < limits.maxEntries && bytes + size <= limits.maxBytes) break
        if (endedAt(entry.approval, at) !== undefined) drop(id)
      }
      if (entries.size >= limits.maxEntries || bytes + size > limits.maxBytes) throw new ApprovalsFullError()
      entries.set(approval.id, { approval, bytes: size })
      bytes += size
      return copy(approval)
    },
    async get (id) {
      const entry = live(id)
      if (entry === undefined) return undefined
      return { ...copy(entry.approval), status: effectiveStatus(entry.approval, now()) }
    },
    async list (query: ListQuery) {
      const at = now()
      purge(at)
      const after = query.from === undefined ? undefined : decodeCursor(query.from)
      const matching = [...entries.values()]
        .map(({ approval }) => approval)
        .filter((approval) => isVisibleTo(approval, { ...query.requester, org: query.org, roles: query.roles }))
        .filter((approval) => query.status === undefined || effectiveStatus(approval, at) === query.status)
        .filter((approval) => after === undefined || compareNewestFirst(after, approval) < 0)
        .sort(compareNewestFirst)
      const page = matching.slice(0, query.limit).map((approval) => ({ ...copy(approval), status: effectiveStatus(approval, at) }))
      const last = page.at(-1)
      return { approvals: page, next: matching.length > query.limit && last !== undefined ? encodeCursor(last) : undefined }
    },
    approve: async (id, decider, reason) => decide(id, decider, 'approve', reason) as ApproveOutcome,
    deny: async (id, decider, reason) => decide(id, decider, 'deny', reason) as DenyOutcome,
    async complete (id, result) {
      const entry = entries.get(id)
      if (entry === undefined || entry.approval.status !== 'approved' || entry.approval.result !== null) return
      entry.approval.result = { ...result, at: now() }
      resize(entry)
    },
    async expireDue (max = 100) {
      const at = now()
      purge(at)
      const expired: Approval[] = []
      for (const { approval } of entries.values()) {
        if (expired.length >= max) break
        if (approval.status === 'pending' && at >= approval.expires_at) {
          approval.status = 'expired'
          expired.push(copy(approval))
        }
      }
      return expired
    },
    async close () {
      entries.clear()
      bytes = 0
    }
  }
}
