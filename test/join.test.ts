import t from 'tap'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { startHarness } from './helpers/harness.js'

t.test('joins a local user to a public room by room ID', async (t) => {
  const h = await startHarness(t)
  const res = await h.join(encodeURIComponent(RECORDED_ROOMS.publicTest), { user_id: '@alice:test.local' })
  t.equal(res.status, 200, res.text)
  t.same(res.body, { room_id: RECORDED_ROOMS.publicTest, user_id: '@alice:test.local' })
  const [entry] = h.audit()
  t.equal(entry?.outcome, 'success')
})
