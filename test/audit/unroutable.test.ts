/**
 * Requests refused before routing (bad percent-encoding) are audited like any attempt: with the
 * action of the route the path names and every field of version 1, `duration_ms` included.
 */
import t from 'tap'
import { request } from 'undici'
import { startHarness } from '../helpers/harness.js'
import { forRequest, until } from '../helpers/audit.js'

t.test('a request refused before routing names the action of its route and carries every version-1 field', async (t) => {
  const h = await startHarness(t)
  const cases = [
    { id: 'bad-join', method: 'POST', path: '/v1/rooms/%E0%A4%A/members', action: 'room.join' },
    { id: 'bad-members', method: 'GET', path: '/v1/rooms/%E0%A4%A/members', action: 'room.members.read' },
    { id: 'bad-remove', method: 'DELETE', path: '/v1/rooms/%23a:test.local/members/%40alice%ZZ', action: 'room.remove' },
    { id: 'bad-promote', method: 'POST', path: '/v1/rooms/%ZZ/admins', action: 'room.promote' },
    { id: 'bad-user', method: 'GET', path: '/v1/users/%40alice%3Atest.local%ZZ', action: 'user.read' }
  ] as const
  for (const { id, method, path, action } of cases) {
    const res = await request(`${h.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${h.token()}`, 'user-agent': 'helpdesk-tool/1.0', 'x-request-id': id, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      body: method === 'POST' ? '{}' : undefined
    })
    t.equal(res.statusCode, 400, id)
    t.equal((await res.body.json() as { code: string }).code, 'invalid_request')
    await until(() => forRequest(h.auditRecords(), id).length > 0, `the audit record of ${id}`)
    const [record] = forRequest(h.auditRecords(), id)
    t.match(record, {
      event: 'result',
      request_id: id,
      action,
      outcome: 'invalid',
      status: 400,
      code: 'invalid_request',
      actor: null,
      target: { room: null, user_id: null },
      client: { ip: '127.0.0.1', user_agent: 'helpdesk-tool/1.0' }
    }, `${id}: ${action}`)
    t.type(record?.duration_ms, 'number', `${id}: duration_ms`)
    t.ok(typeof record?.time === 'string', `${id}: time`)
  }
  const other = await request(`${h.url}/v1/nothing/%ZZ`, { headers: { 'x-request-id': 'bad-elsewhere' } })
  t.equal(other.statusCode, 400)
  await other.body.dump()
  t.equal(forRequest(h.auditRecords(), 'bad-elsewhere').length, 0, 'a path that names no action route is not an attempt')
  t.equal(h.homeserver.calls.length, 0)
})
