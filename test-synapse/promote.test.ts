/**
 * room.promote against a real Synapse: make_room_admin, checked in the room's power levels, and
 * the users Synapse would wrongly promote (unknown, deactivated) refused before it is called.
 */
import t from 'tap'
import { ALLOW_ALL, startGateway } from './helpers/gateway.js'
import { checkScenario, createWorld, promoteScenarios } from './helpers/scenarios.js'

t.test('room.promote against the real Synapse', async (t) => {
  const world = await createWorld()
  const gateway = await startGateway(t, world.matrix, world.admin, { policy: ALLOW_ALL })

  for (const scenario of await promoteScenarios(world)) {
    t.test(scenario.name, async (t) => {
      await checkScenario(t, gateway, scenario)
    })
  }
})
