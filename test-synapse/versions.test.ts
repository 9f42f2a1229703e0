/**
 * The Synapse answers that differ between the versions the tier runs against, checked on the
 * real Synapse in front of us, so a change in a newer release shows up here first. Each
 * expectation says which versions it applies to (read from GET /_synapse/admin/v1/server_version);
 * test/fixtures/synapse/versions-findings.md is the full list.
 */
import t from 'tap'
import { Matrix } from './helpers/matrix.js'
import { atLeast, synapseVersion } from './helpers/target.js'

t.test('version-dependent answers of the real Synapse', async (t) => {
  const matrix = new Matrix()
  const version = await synapseVersion(matrix.target)
  const modern = atLeast(version, '1.163.0')
  const old = !atLeast(version, '1.68.0')
  t.comment(`Synapse ${version}`)
  if (!modern && !old) {
    t.comment(`no recorded expectations for Synapse ${version} (recorded: 1.67.x and 1.163.x or newer)`)
    return
  }
  const [admin, user] = await Promise.all([matrix.register('versions-admin', { admin: true }), matrix.register('versions-user')])

  const lookup = await matrix.must('GET', `/_synapse/admin/v2/users/${encodeURIComponent(user.userId)}`, { token: admin.token })
  if (modern) {
    t.equal(lookup.deactivated, false, '>= 1.163: the user lookup\'s flags are booleans')
    t.same({ locked: lookup.locked, suspended: lookup.suspended, erased: lookup.erased }, { locked: false, suspended: false, erased: false }, '>= 1.163: locked, suspended and erased are reported')
  } else {
    t.equal(lookup.deactivated, 0, '1.67: the user lookup\'s flags are 0/1')
    t.notOk('locked' in lookup, '1.67: no locked field')
  }

  const kick = await matrix.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(`!nosuch-${matrix.runId}:${matrix.serverName}`)}/kick`, { token: admin.token, body: { user_id: user.userId } })
  t.same({ status: kick.status, error: kick.json?.error }, modern
    ? { status: 404, error: 'Not a known room' }
    : { status: 403, error: 'The target user is not in the room' }, `${modern ? '>= 1.163' : '1.67'}: a kick in an unknown room`)

  const roomId = await matrix.createRoom(admin, { preset: 'private_chat' })
  const create = await matrix.stateEvent(admin.token, roomId, 'm.room.create', '')
  t.equal(create?.content?.room_version, modern ? '12' : '9', `${modern ? '>= 1.163' : '1.67'}: the default room version`)

  const suspend = await matrix.call('PUT', `/_synapse/admin/v1/suspend/${encodeURIComponent(user.userId)}`, { token: admin.token, body: { suspend: false } })
  t.equal(suspend.status, modern ? 200 : 400, `${modern ? '>= 1.163: the suspend endpoint exists' : '1.67: no suspend endpoint (M_UNRECOGNIZED)'}`)
})
