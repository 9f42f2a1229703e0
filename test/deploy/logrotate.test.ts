/**
 * deploy/logrotate/ as written: each rule, with only its path and its postrotate command
 * pointed at this machine, is run by the real logrotate (`-f`, when logrotate is installed)
 * against a real gateway process: the file is renamed, the gateway is sent SIGHUP, reopens the
 * path (created by logrotate with the numeric owner, or by the gateway itself), keeps its chain
 * going, and logs one line naming the file. The compose rule's command names services that
 * exist, with the audit files they write.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { startHarness } from '../helpers/harness.js'
import { collect, exited, listening, spawnServer } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'

const read = (file: string) => readFileSync(new URL(`../../deploy/logrotate/${file}`, import.meta.url), 'utf8')
const logrotate = ['/usr/sbin', ...(process.env.PATH ?? '').split(delimiter)].map((folder) => join(folder, 'logrotate')).find((file) => existsSync(file))
const rules = (text: string) => [...text.matchAll(/^(\S+) \{\n([\s\S]*?)^\}/gm)].map((match) => ({ path: match[1] as string, body: match[2] as string }))

t.test('the compose rule signals the compose services whose audit files it rotates', async (t) => {
  const compose = parse(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as { name: string, services: Record<string, { environment?: Record<string, string>, volumes?: string[] }> }
  const found = rules(read('synapse-admin-gateway-compose'))
  t.equal(found.length, 2)
  for (const rule of found) {
    const service = /docker compose -f \S+\/docker-compose\.yml (?:--profile \S+ )?kill -s HUP (\S+)\n/.exec(rule.body)?.[1] as string
    const environment = compose.services[service]?.environment
    t.ok(environment, `${service} is a compose service`)
    const volume = compose.services[service]?.volumes?.find((entry) => entry.endsWith(':/var/log/gateway'))?.split(':')[0]
    t.equal(rule.path, `/var/lib/docker/volumes/${compose.name}_${String(volume)}/_data/${basename(environment?.AUDIT_LOG_FILE ?? '')}`, `${service}: the host path of its AUDIT_LOG_FILE`)
    t.match(rule.body, /^\s+create 0640 1000 1000$/m, 'numeric owner: the image\'s node user')
  }
  for (const text of [read('synapse-admin-gateway'), read('synapse-admin-gateway-compose')]) t.notMatch(text, /^\s*copytruncate/m)
})

for (const file of ['synapse-admin-gateway', 'synapse-admin-gateway-compose']) {
  t.test(`${file}: logrotate renames, the gateway reopens on SIGHUP and says so`, { skip: logrotate === undefined ? 'logrotate is not installed (apt-get install logrotate)' : false }, async (t) => {
    const h = await startHarness(t)
    const dir = mkdtempSync(join(tmpdir(), 'gateway-logrotate-'))
    t.after(() => { rmSync(dir, { recursive: true, force: true }) })
    const auditFile = join(dir, 'audit.log')
    const child = spawnServer(h.serverEnv({ AUDIT_LOG_FILE: auditFile }))
    t.after(async () => { child.kill('SIGTERM'); await exited(child) })
    const out = collect(child)
    await listening(child, out)
    const rule = rules(read(file))[0] as { path: string, body: string }
    const config = join(dir, 'logrotate.conf')
    const body = rule.body.replace(/(postrotate\n\s+).*\n/, `$1kill -HUP ${String(child.pid)}\n`)
    writeFileSync(config, `${auditFile} {\n${body}}\n`, { mode: 0o644 })
    await promisify(execFile)(logrotate as string, ['--force', '--state', join(dir, 'state'), config])

    const rotated = readdirSync(dir).filter((name) => /^audit\.log-\d{8}$/.test(name))
    t.equal(rotated.length, 1, 'renamed with the date')
    const reloadLine = () => out.stdout.split('\n').find((entry) => entry.includes('"msg":"reloaded'))
    await waitFor(() => reloadLine() !== undefined, 'the reload line', { timeoutMs: 10_000 })
    // Written by the gateway when it handles the SIGHUP, so looked for after its reload line.
    t.ok(existsSync(`${auditFile}.chain-head`), 'the chain head is left alone')
    t.match(reloadLine(), `audit file ${auditFile} reopened`)
    t.equal(statSync(auditFile).mode & 0o777, 0o640)
    if (/create 0640 1000 1000/.test(rule.body)) t.same([statSync(auditFile).uid, statSync(auditFile).gid], [1000, 1000], 'created for uid and gid 1000 by number')
    child.kill('SIGTERM')
    await exited(child)
    const records = readFileSync(auditFile, 'utf8').trim().split('\n').map((entry) => JSON.parse(entry) as { event: string, prev: string | null })
    t.equal(records.at(-1)?.event, 'stop', 'the gateway writes on in the new file')
    t.not(records[0]?.prev, null, '…continuing the chain of the renamed file')
  })
}
