/**
 * Dry runs against a real Synapse: for every case of every acting action, `?dry_run=true` first
 * (nothing may change in Synapse), then the real call; the dry run's `would_succeed` and `code`
 * must be what the real call then did.
 */
import t from 'tap'
import { ALLOW_ALL, startGateway } from './helpers/gateway.js'
import { checkScenario, createWorld, joinScenarios, promoteScenarios, removeScenarios, stateSnapshot } from './helpers/scenarios.js'

t.test('dry runs against the real Synapse', async (t) => {
  const world = await createWorld()
  const gateway = await startGateway(t, world.matrix, world.admin, { policy: ALLOW_ALL })
  const scenarios = (await Promise.all([joinScenarios(world), removeScenarios(world), promoteScenarios(world)])).flat()

  for (const scenario of scenarios) {
    t.test(`dry run of ${scenario.action}: ${scenario.name}`, async (t) => {
      const before = await stateSnapshot(world, scenario.roomId)
      const dry = await gateway.call(scenario.method, `${scenario.path}?dry_run=true`, { body: scenario.body })
      const said = `dry run ${scenario.method} ${scenario.path}?dry_run=true answered ${dry.status} ${JSON.stringify(dry.body)}`
      t.equal(dry.status, 200, `a dry run answers 200 (${said})`)
      t.equal(dry.body?.dry_run, true, 'dry_run: true')
      t.ok(Array.isArray(dry.body?.checks) && dry.body.checks.every((check: any) => typeof check?.name === 'string' && typeof check?.ok === 'boolean'),
        `checks is a list of {name, ok, detail} (${said})`)
      t.same(await stateSnapshot(world, scenario.roomId), before, 'the dry run changed no member or power-level state in Synapse')
      const requestId = dry.headers['x-request-id']
      t.ok(gateway.audit().some((record) => record.request_id === requestId && record.outcome === 'dry_run'), 'the dry run is audited with outcome dry_run')

      const real = await checkScenario(t, gateway, scenario)
      const succeeded = real.status >= 200 && real.status < 300
      t.equal(dry.body?.would_succeed, succeeded, `would_succeed matches the real call (real: ${real.status} ${JSON.stringify(real.body)})`)
      t.equal(dry.body?.code, succeeded ? undefined : real.body?.code, 'the dry run\'s code is the real call\'s code')
    })
  }
})
