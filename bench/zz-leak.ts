import { spawn } from 'node:child_process'
import { readFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { request } from 'undici'
import { RECORDED_ROOMS } from '../dev/homeserver/state.js'
import { helpdeskClaims, signJwt } from '../dev/tokens.js'
import { freePort } from './free-port.js'
const flags = (process.env.FLAGS ?? '').split(' ').filter(Boolean)
const hs = spawn(process.execPath, ['--import', 'tsx', 'bench/homeserver.ts', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
const synapseUrl = await new Promise<string>((resolve) => hs.stdout!.once('data', (c: Buffer) => resolve(c.toString().trim())))
const port = await freePort(); const dir = mkdtempSync(join(tmpdir(), 'leak-'))
const SECRET = 'abcdefghijklmnopqrstuvwxyz0123456789abcdefgh'
const gw = spawn(process.execPath, [...flags, 'dist/server.js'], { env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), SYNAPSE_URL: synapseUrl, SYNAPSE_ADMIN_TOKEN: 'syt_bench_admin_token', SYNAPSE_SERVER_NAME: 'test.local', SYNAPSE_MAX_CONCURRENCY: '128', JWT_SECRET: SECRET, POLICY_FILE: 'bench/policy-ten-rules.yaml', AUDIT_LOG_FILE: join(dir, 'audit.log'), LOG_LEVEL: 'info', METRICS_ENABLED: 'true', RATE_LIMIT_PER_MINUTE: '1000000', RATE_LIMIT_PER_IP_PER_MINUTE: '10000000' }, stdio: ['ignore', 'ignore', 'inherit'] })
const url = `http://127.0.0.1:${port}`
for (;;) { try { const r = await request(`${url}/healthz`); await r.body.dump(); if (r.statusCode === 200) break } catch {} await new Promise((r) => setTimeout(r, 20)) }
const rss = () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gw.pid}/status`, 'utf8'))![1]) / 1024)
await new Promise((r) => setTimeout(r, 1000))
console.log('idle', rss())
const token = signJwt({ alg: 'HS256' }, helpdeskClaims({}), SECRET)
const room = encodeURIComponent(RECORDED_ROOMS.publicTest)
for (let i = 0; i < Number(process.env.ROUNDS ?? 5); i++) {
  let peak = 0; const s = setInterval(() => { peak = Math.max(peak, rss()) }, 50)
  const r = await autocannon({ url: `${url}/v1/rooms/${room}/members`, method: 'POST', connections: Number(process.env.CONN ?? 100), duration: 4, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ user_id: '@alice:test.local' }) })
  clearInterval(s)
  await new Promise((r) => setTimeout(r, 1500))
  console.log(`round ${i}: ${Math.round(r.requests.average)} req/s, non2xx ${r.non2xx}, peak ${peak}, after ${rss()}`)
}
gw.kill(); hs.kill()
