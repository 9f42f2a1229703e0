/**
 * What logrotate's postrotate SIGHUP does, said in one log line: the policy file read again
 * (with its rule count) and the audit file reopened at its path, after the old file was
 * renamed away. Without POLICY_FILE or AUDIT_LOG_FILE the line says so.
 */
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SimulatedHomeserver } from '../../dev/homeserver/server.js'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { ADMIN_TOKEN, JWT_SECRET, LogCapture } from '../helpers/harness.js'

const POLICY = `
rules:
  - name: admins-join
    roles: [matrix-admin]
    actions: [room.join]
`

async function gateway (t: Test, env: Record<string, string>) {
  const homeserver = new SimulatedHomeserver({ adminToken: ADMIN_TOKEN })
  const logs = new LogCapture()
  const app = await buildApp(loadConfig({
    SYNAPSE_URL: await homeserver.listen(),
    SYNAPSE_ADMIN_TOKEN: ADMIN_TOKEN,
    SYNAPSE_SERVER_NAME: 'test.local',
    JWT_SECRET,
    ...env
  }), { logDestination: logs })
  t.after(async () => { await app.close(); await homeserver.close() })
  const lines = () => logs.text.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  return { app, lines }
}

t.test('after logrotate renamed the audit file: one line naming the policy, its rules and the reopened audit file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-reload-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const auditFile = join(dir, 'audit.log')
  const policyFile = join(dir, 'policy.yaml')
  writeFileSync(policyFile, POLICY)
  const { app, lines } = await gateway(t, { AUDIT_LOG_FILE: auditFile, POLICY_FILE: policyFile })

  renameSync(auditFile, `${auditFile}.1`)
  app.reload()
  const reloaded = lines().filter((line) => String(line.msg).startsWith('reloaded'))
  t.equal(reloaded.length, 1, 'one line')
  t.match(reloaded[0], {
    level: 30,
    msg: `reloaded: policy ${policyFile} (1 rule); audit file ${auditFile} reopened`,
    policy: policyFile,
    rules: 1,
    audit_file: auditFile
  })
  t.ok(existsSync(auditFile), 'a new audit file at the same path')

  writeFileSync(policyFile, 'rules: [')
  app.reload()
  const failed = lines().find((line) => String(line.msg).startsWith('the new policy file is not valid'))
  t.match(failed, { level: 50, msg: `the new policy file is not valid: the previous policy stays in force; audit file ${auditFile} reopened` }, 'a bad policy still says the audit file was reopened')
})

t.test('without a policy file or an audit file, the line says what there was to do', async (t) => {
  const { app, lines } = await gateway(t, {})
  app.reload()
  t.match(lines().find((line) => String(line.msg).startsWith('reloaded')), {
    msg: 'reloaded: no POLICY_FILE to read; audit on standard output (nothing to reopen)',
    audit_file: null
  })
})
