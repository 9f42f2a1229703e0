/**
 * room.remove against a real Synapse: the kick through the client API with the admin token, and
 * every sharp edge of it the gateway absorbs (absent, invited and banned targets, power, aliases).
 */
import t from 'tap'
import { ALLOW_ALL, startGateway } from './helpers/gateway.js'
import { checkScenario, createWorld, removeScenarios } from './helpers/scenarios.js'

t.test('room.remove against the real Synapse', async (t) => {
  const world = await createWorld()
  const gateway = await startGateway(t, world.matrix, world.admin, { policy: ALLOW_ALL })

  for (const scenario of await removeScenarios(world)) {
    t.test(scenario.name, async (t) => {
      await checkScenario(t, gateway, scenario)
    })
  }
})
