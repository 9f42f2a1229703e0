/**
 * room.join against a real Synapse: every case of the contract's join, through the gateway over
 * HTTP with a signed JWT, and Synapse's own state read back through its admin API.
 */
import t from 'tap'
import { startGateway } from './helpers/gateway.js'
import { checkScenario, createWorld, joinScenarios } from './helpers/scenarios.js'

t.test('room.join against the real Synapse', async (t) => {
  const world = await createWorld()
  const gateway = await startGateway(t, world.matrix, world.admin)

  for (const scenario of await joinScenarios(world)) {
    t.test(scenario.name, async (t) => {
      await checkScenario(t, gateway, scenario)
    })
  }
})
