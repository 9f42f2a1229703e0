/**
 * `npm run openapi`: writes openapi.yaml from the route schemas. The committed file is
 * checked against this output by test/docs/openapi.test.ts, so it cannot drift from the code.
 */
import { writeFileSync } from 'node:fs'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

/** A configuration that only serves to build the routes; nothing is contacted. */
export async function generateOpenApiYaml (): Promise<string> {
  const app = await buildApp(loadConfig({
    SYNAPSE_URL: 'http://127.0.0.1:8008',
    SYNAPSE_ADMIN_TOKEN: 'unused',
    SYNAPSE_SERVER_NAME: 'example.com',
    JWT_SECRET: 'unused-unused-unused-unused-unused-00',
    AUDIT_LOG_FILE: '/dev/null',
    LOG_LEVEL: 'silent'
  }))
  await app.ready()
  const yaml = app.swagger({ yaml: true })
  await app.close()
  return yaml
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  writeFileSync(new URL('../openapi.yaml', import.meta.url), await generateOpenApiYaml())
  process.stdout.write('openapi.yaml written\n')
}
