/**
 * No cluster runs here, so deploy/kubernetes/ is checked by reading it: every manifest parses
 * (as YAML 1.1, as Kubernetes reads it), the kustomization lists every manifest but the Secret
 * template, and the properties an operator relies on hold: two hardened replicas with probes,
 * limits, a pre-stop delay that fits the shutdown grace, secrets and the policy as files, a
 * Service for callers and one for metrics, NetworkPolicies, a PodDisruptionBudget and a Valkey
 * with a password that select the right pods. The gateway's environment is fed to the real
 * loadConfig with the Secret and ConfigMap files where the pod would have them mounted. The
 * kustomization is rendered (test/helpers/kustomize.ts; with kubectl on the PATH,
 * `kubectl kustomize` too), with each optional component, and every object is validated
 * against Kubernetes 1.30's strict JSON schemas (test/fixtures/kubernetes-schema/).
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { parse, parseAllDocuments } from 'yaml'
import { EnvSchema, loadConfig } from '../../src/config.js'
import { kustomize, type Manifest } from '../helpers/kustomize.js'

const dir = new URL('../../deploy/kubernetes/', import.meta.url)
const readYaml = (file: string) => parseAllDocuments(readFileSync(new URL(file, dir), 'utf8'), { version: '1.1' })
  .map((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]?.message ?? ''}`)
    return document.toJS() as Manifest
  })

interface Container {
  name: string
  image: string
  ports?: Array<{ name: string, containerPort: number }>
  env?: Array<{ name: string, value?: string, valueFrom?: unknown }>
  envFrom?: unknown[]
  volumeMounts?: Array<{ name: string, mountPath: string, readOnly?: boolean, subPath?: string }>
  resources?: { requests?: Record<string, string>, limits?: Record<string, string> }
  securityContext?: Record<string, any>
  [probe: string]: any
}

const kustomization = parse(readFileSync(new URL('kustomization.yaml', dir), 'utf8')) as { namespace: string, resources: string[], images: Array<{ name: string, newName?: string, newTag?: string }> }
const manifestFiles = readdirSync(dir).filter((file) => /\.ya?ml$/.test(file) && file !== 'kustomization.yaml')
const manifests = kustomization.resources.flatMap((file) => readYaml(file))
const find = (kind: string, name: string) => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name)
  if (found === undefined) throw new Error(`no ${kind} ${name} in the kustomization`)
  return found
}
const gatewayDeployment = find('Deployment', 'synapse-admin-gateway')
const valkeyDeployment = find('Deployment', 'valkey')
const podSpec = gatewayDeployment.spec.template.spec
const gateway = podSpec.containers[0] as Container
const env = Object.fromEntries((gateway.env ?? []).map((entry) => [entry.name, entry.value]))
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels[key] === value)

t.test('the kustomization lists every manifest, and never the Secret template', async (t) => {
  t.same([...kustomization.resources].sort(), manifestFiles.filter((file) => !file.endsWith('.example.yaml')).sort())
  t.ok(manifestFiles.includes('secret.example.yaml'), 'a Secret template ships')
  t.notOk(kustomization.resources.includes('secret.example.yaml'), 'applying the kustomization cannot overwrite the real Secret with placeholders')
  for (const manifest of [...manifests, ...readYaml('secret.example.yaml')]) {
    t.ok(manifest.apiVersion !== undefined && manifest.kind !== undefined && manifest.metadata.name !== undefined, `${manifest.kind} ${manifest.metadata.name} is a Kubernetes object`)
    if (manifest.kind !== 'Namespace') t.equal(manifest.metadata.namespace, kustomization.namespace, `${manifest.kind} ${manifest.metadata.name} is in the namespace`)
  }
  const namespace = find('Namespace', kustomization.namespace)
  t.equal(namespace.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted', 'Pod Security "restricted" is enforced')
  const image = kustomization.images.find((entry) => entry.name === gateway.image.split(':')[0])
  t.ok(image, 'the gateway image can be set in the kustomization')
  t.match(gateway.image, /^[^:]+:\d+\.\d+\.\d+$/, 'the gateway image is pinned to a version')
  t.notMatch((valkeyDeployment.spec.template.spec.containers[0] as Container).image, /:latest$|^[^:]+$/, 'Valkey is pinned')
})

t.test('two replicas, spread over nodes, that a rollout never takes below two', async (t) => {
  t.ok(gatewayDeployment.spec.replicas >= 2)
  t.equal(gatewayDeployment.spec.strategy.rollingUpdate.maxUnavailable, 0)
  const spread = podSpec.topologySpreadConstraints as Array<{ topologyKey: string, labelSelector: { matchLabels: Record<string, string> } }>
  t.ok(spread.some((constraint) => constraint.topologyKey === 'kubernetes.io/hostname' && matches(constraint.labelSelector.matchLabels, gatewayDeployment.spec.template.metadata.labels)), 'spread across nodes')
  t.ok(matches(gatewayDeployment.spec.selector.matchLabels, gatewayDeployment.spec.template.metadata.labels), 'the Deployment selects its own pods')
  t.equal(podSpec.enableServiceLinks, false, 'no service variables that look like gateway settings')
  t.equal(podSpec.automountServiceAccountToken, false)
})

t.test('every container runs non-root, read-only, unprivileged, with requests and limits', async (t) => {
  const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8')
  t.match(dockerfile, /^USER node$/m, 'the image runs as node, uid 1000 in the node base images')
  t.equal(podSpec.securityContext.runAsUser, 1000, 'the numeric uid of the image\'s node user')
  for (const deployment of [gatewayDeployment, valkeyDeployment]) {
    const spec = deployment.spec.template.spec
    t.equal(spec.securityContext.runAsNonRoot, true, `${deployment.metadata.name}: runAsNonRoot`)
    t.ok(Number.isInteger(spec.securityContext.runAsUser) && spec.securityContext.runAsUser > 0, `${deployment.metadata.name}: a numeric non-zero uid (runAsNonRoot cannot check a user name)`)
    t.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault')
    for (const container of spec.containers as Container[]) {
      const context = container.securityContext ?? {}
      t.equal(context.allowPrivilegeEscalation, false, `${container.name}: no privilege escalation`)
      t.equal(context.readOnlyRootFilesystem, true, `${container.name}: read-only root filesystem`)
      t.same(context.capabilities?.drop, ['ALL'], `${container.name}: every capability dropped`)
      t.equal(context.seccompProfile?.type, 'RuntimeDefault')
      for (const kind of ['requests', 'limits'] as const) {
        t.ok(container.resources?.[kind]?.cpu !== undefined && container.resources[kind].memory !== undefined, `${container.name}: cpu and memory ${kind}`)
      }
      // Writable places are emptyDirs only, never the image.
      for (const mount of container.volumeMounts ?? []) {
        if (mount.readOnly === true) continue
        const volume = (spec.volumes as Array<{ name: string, emptyDir?: { sizeLimit?: string } }>).find((v) => v.name === mount.name)
        t.ok(volume?.emptyDir?.sizeLimit, `${container.name}: ${mount.mountPath} is a size-limited emptyDir`)
      }
    }
  }
  const writable = (gateway.volumeMounts ?? []).filter((mount) => mount.readOnly !== true).map((mount) => mount.mountPath)
  t.same(writable, ['/tmp'], 'the gateway writes nowhere but /tmp')
})

t.test('probes: readiness on /readyz, liveness on /healthz, on the port the gateway listens on', async (t) => {
  const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8')
  const imagePort = Number(/PORT=(\d+)/.exec(dockerfile)?.[1])
  const portOf = (probe: { httpGet: { port: string | number } }) => {
    const port = probe.httpGet.port
    return typeof port === 'number' ? port : gateway.ports?.find((p) => p.name === port)?.containerPort
  }
  t.equal(gateway.readinessProbe.httpGet.path, '/readyz')
  t.equal(gateway.livenessProbe.httpGet.path, '/healthz')
  t.equal(gateway.startupProbe.httpGet.path, '/healthz')
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    t.equal(portOf(gateway[probe]), env.PORT === undefined ? imagePort : Number(env.PORT), `${probe} on the listening port`)
  }
  t.not(env.METRICS_PORT, String(imagePort), 'metrics on their own port')
})

t.test('the pre-stop delay and the shutdown grace fit in terminationGracePeriodSeconds', async (t) => {
  const preStopS = gateway.lifecycle.preStop.sleep.seconds as number
  t.ok(Number.isInteger(preStopS) && preStopS > 0, 'a sleep pre-stop handler')
  const graceMs = Number(env.SHUTDOWN_GRACE_MS ?? 30000)
  const synapseTimeoutMs = Number(env.SYNAPSE_TIMEOUT_MS ?? 10000)
  t.ok(synapseTimeoutMs < graceMs, 'SYNAPSE_TIMEOUT_MS is shorter than SHUTDOWN_GRACE_MS')
  t.ok(podSpec.terminationGracePeriodSeconds * 1000 > preStopS * 1000 + graceMs,
    `terminationGracePeriodSeconds (${String(podSpec.terminationGracePeriodSeconds)}) > pre-stop ${preStopS} s + SHUTDOWN_GRACE_MS ${graceMs} ms`)
})

t.test('secrets and the policy reach the gateway as files, and the audit goes to standard output', async (t) => {
  t.equal(gateway.envFrom, undefined)
  t.same((gateway.env ?? []).filter((entry) => entry.valueFrom !== undefined), [], 'no value taken from a Secret into the environment')
  for (const name of ['SYNAPSE_ADMIN_TOKEN', 'JWT_SECRET', 'JWT_PUBLIC_KEY']) t.notOk(name in env, `${name} is not set directly`)
  t.notOk('AUDIT_LOG_FILE' in env, 'audit entries go to standard output')

  const volumes = podSpec.volumes as Array<{ name: string, secret?: { secretName: string, defaultMode?: number }, configMap?: { name: string } }>
  const mountOf = (path: string) => {
    const mount = (gateway.volumeMounts ?? []).find((m) => path.startsWith(`${m.mountPath}/`))
    const volume = volumes.find((v) => v.name === mount?.name)
    return { mount, volume, key: mount === undefined ? undefined : path.slice(mount.mountPath.length + 1) }
  }
  const template = readYaml('secret.example.yaml')[0] as Manifest
  const fileVariables = Object.keys(env).filter((name) => name.endsWith('_FILE'))
  t.ok(fileVariables.includes('SYNAPSE_ADMIN_TOKEN_FILE'))
  for (const name of fileVariables.filter((variable) => variable !== 'POLICY_FILE')) {
    const { mount, volume, key } = mountOf(env[name] as string)
    t.equal(volume?.secret?.secretName, template.metadata.name, `${name} is a file of the Secret`)
    t.equal(mount?.readOnly, true)
    t.ok(key !== undefined && key in template.stringData, `${name}: the Secret template has the key ${String(key)}`)
  }
  const secretVolume = volumes.find((v) => v.secret !== undefined)
  t.equal((secretVolume?.secret?.defaultMode ?? 0o644) & 0o007, 0, 'secret files are not world-readable')
  t.equal(secretVolume?.secret?.defaultMode, 0o440, 'readable by the owner and fsGroup')
  t.equal(podSpec.securityContext.fsGroup, podSpec.securityContext.runAsGroup, 'the gateway\'s group may read them')

  const policy = mountOf(env.POLICY_FILE as string)
  t.equal(policy.mount?.subPath, undefined, 'mounted as a directory, so an applied change reaches the file')
  const configMap = find('ConfigMap', policy.volume?.configMap?.name as string)
  const rules = (parse(configMap.data[policy.key as string]) as { rules: Array<{ name: string, actions: string[] }> }).rules
  t.ok(rules.length > 0 && rules.every((rule) => typeof rule.name === 'string' && rule.actions.length > 0), 'the ConfigMap holds a policy at POLICY_FILE')
})

t.test('the gateway accepts the Deployment\'s configuration with the files where the pod has them', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gateway-k8s-'))
  const template = readYaml('secret.example.yaml')[0] as Manifest
  const local: Record<string, string> = { HOST: '0.0.0.0', PORT: '8080' }
  for (const [name, value] of Object.entries(env)) {
    const mount = (gateway.volumeMounts ?? []).find((m) => value?.startsWith(`${m.mountPath}/`))
    if (mount === undefined) { local[name] = value as string; continue }
    const volume = (podSpec.volumes as Array<{ name: string, configMap?: { name: string } }>).find((v) => v.name === mount.name)
    const files: Record<string, string> = volume?.configMap === undefined
      ? Object.fromEntries(Object.entries(template.stringData as Record<string, string>).map(([key, value]) => [key, `${value}\n`]))
      : find('ConfigMap', volume.configMap.name).data
    const mounted = join(root, mount.name)
    mkdirSync(mounted, { recursive: true })
    for (const [file, content] of Object.entries(files)) writeFileSync(join(mounted, file), content)
    local[name] = join(mounted, value?.slice(mount.mountPath.length + 1) as string)
  }
  const config = loadConfig(local)
  t.match(config, {
    host: '0.0.0.0',
    auditLogFile: undefined,
    redisUrl: template.stringData.redis_url,
    shutdownGraceMs: Number(env.SHUTDOWN_GRACE_MS),
    publicUrl: env.PUBLIC_URL,
    synapse: { adminToken: template.stringData.synapse_admin_token },
    jwt: { verification: { kind: 'jwks' }, rolesClaim: 'realm_access.roles' }
  })
  t.same(config.warnings, [], 'no unknown or misspelt variable')
})

t.test('the Service, the PodDisruptionBudget and Valkey select the right pods', async (t) => {
  const podLabels = gatewayDeployment.spec.template.metadata.labels
  const service = find('Service', 'synapse-admin-gateway')
  t.ok(matches(service.spec.selector, podLabels), 'the Service selects the gateway pods')
  const metricsService = find('Service', 'synapse-admin-gateway-metrics')
  t.ok(matches(metricsService.spec.selector, podLabels), 'the metrics Service selects the gateway pods')
  for (const port of [...service.spec.ports, ...metricsService.spec.ports] as Array<{ targetPort: string }>) {
    t.ok(gateway.ports?.some((p) => p.name === port.targetPort), `Service port ${port.targetPort} exists on the container`)
  }
  t.same(service.spec.ports.map((port: { targetPort: string }) => port.targetPort), ['http'], 'callers\' Service: no metrics port')
  t.same(metricsService.spec.ports.map((port: { targetPort: string }) => port.targetPort), ['metrics'])
  t.equal(gateway.ports?.find((port) => port.name === 'metrics')?.containerPort, Number(env.METRICS_PORT), 'the metrics port is METRICS_PORT')
  const pdb = find('PodDisruptionBudget', 'synapse-admin-gateway')
  t.equal(pdb.spec.minAvailable, 1)
  t.ok(pdb.spec.minAvailable < gatewayDeployment.spec.replicas, 'a drain can still evict one pod')
  t.ok(matches(pdb.spec.selector.matchLabels, podLabels), 'the PodDisruptionBudget selects the gateway pods')
  t.notOk(matches(pdb.spec.selector.matchLabels, valkeyDeployment.spec.template.metadata.labels), '…and not Valkey')

  const valkeyService = find('Service', 'valkey')
  t.ok(matches(valkeyService.spec.selector, valkeyDeployment.spec.template.metadata.labels), 'the valkey Service selects Valkey')
  t.notOk(matches(valkeyService.spec.selector, podLabels))
  const [gatewaySecret, valkeySecret] = readYaml('secret.example.yaml') as [Manifest, Manifest]
  const redis = new URL(gatewaySecret.stringData.redis_url as string)
  t.equal(redis.hostname, valkeyService.metadata.name, 'the Redis URL names the valkey Service')
  t.equal(Number(redis.port), valkeyService.spec.ports[0].port)
  t.equal(decodeURIComponent(redis.password), valkeySecret.stringData.password, 'with Valkey\'s password')
  t.equal(valkeyDeployment.spec.replicas, 1, 'one Valkey: never two with different data behind one Service')
  const networkPolicy = find('NetworkPolicy', 'valkey')
  t.ok(matches(networkPolicy.spec.podSelector.matchLabels, valkeyDeployment.spec.template.metadata.labels), 'the NetworkPolicy guards Valkey')
  t.ok(matches(networkPolicy.spec.ingress[0].from[0].podSelector.matchLabels, podLabels), '…letting the gateway pods in')
})

t.test('every setting the gateway reads is in the Deployment, set or commented with its default', async (t) => {
  const text = readFileSync(new URL('gateway-deployment.yaml', dir), 'utf8')
  const missing = Object.keys(EnvSchema.properties).filter((name) => !new RegExp(`\\b${name}\\b`).test(text))
  t.same(missing, [], 'docs/configuration.md lists them all; so does the Deployment')
  t.equal(env.JWT_ROLES_CLAIM, 'realm_access.roles', 'the Keycloak JWKS URL comes with Keycloak\'s roles claim')
  t.ok(env.REDIS_URL_FILE !== undefined && env.REDIS_URL === undefined, 'the Redis URL (with its password) from a file')
})

t.test('the gateway\'s NetworkPolicy: callers and Prometheus in; Synapse, Valkey, the IdP and DNS out', async (t) => {
  const policy = find('NetworkPolicy', 'synapse-admin-gateway')
  t.ok(matches(policy.spec.podSelector.matchLabels, gatewayDeployment.spec.template.metadata.labels), 'guards the gateway pods')
  t.same(policy.spec.policyTypes, ['Ingress', 'Egress'])
  const inPorts = (policy.spec.ingress as Array<{ ports: Array<{ port: string }> }>).map((rule) => rule.ports.map((port) => port.port).join(','))
  t.same(inPorts, ['http', 'metrics'], 'callers on http, Prometheus on metrics, in separate rules')
  const outPorts = (policy.spec.egress as Array<{ ports: Array<{ port: number, protocol: string }> }>).flatMap((rule) => rule.ports.map((port) => `${port.port}/${port.protocol}`))
  const synapsePort = new URL(env.SYNAPSE_URL as string).port
  t.same(outPorts, [`${synapsePort}/TCP`, '6379/TCP', '443/TCP', '53/UDP', '53/TCP'], 'Synapse, Valkey, the IdP (HTTPS), DNS')
  t.equal(new URL(env.JWT_JWKS_URL as string).protocol, 'https:', 'the IdP is reached on 443')
  const valkeyRule = policy.spec.egress[1].to[0].podSelector.matchLabels
  t.ok(matches(valkeyRule, valkeyDeployment.spec.template.metadata.labels), 'the Valkey rule selects Valkey')
})

t.test('Valkey wants the password from its Secret, never in an argument, and evicts by TTL', async (t) => {
  const valkey = valkeyDeployment.spec.template.spec.containers[0] as Container
  const script = (valkey.args as string[]).join(' ')
  t.match(script, /requirepass "%s".*\$\(cat \/run\/secrets\/valkey\/password\)/, 'requirepass from the mounted file')
  t.match(script, /exec valkey-server \/tmp\/valkey-auth\.conf/, 'valkey-server is the container\'s main process, reading the written config')
  t.match(script, /--maxmemory-policy volatile-ttl/, 'the eviction policy docs/deploy.md recommends (every key has a TTL)')
  t.notOk(valkey.env, 'no password in the environment')
  const volume = (valkeyDeployment.spec.template.spec.volumes as Array<{ name: string, secret?: { secretName: string } }>)
    .find((v) => v.name === valkey.volumeMounts?.find((mount) => mount.mountPath === '/run/secrets/valkey')?.name)
  t.equal(volume?.secret?.secretName, (readYaml('secret.example.yaml')[1] as Manifest).metadata.name, 'the Secret valkey-auth')
  t.match(valkey.readinessProbe.exec.command.join(' '), /valkey-cli ping \| grep -q PONG/, 'the readiness probe authenticates')
  const compose = parse(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8')) as { services: Record<string, { command: string[] }> }
  const policy = compose.services.valkey?.command
  t.equal(policy?.[(policy.indexOf('--maxmemory-policy')) + 1], 'volatile-ttl', 'compose\'s Valkey agrees')
})

// Kubernetes 1.30's strict schemas: unknown fields are errors, as `kubectl apply` (strict
// field validation) would make them.
const schemas = JSON.parse(readFileSync(new URL('../../test/fixtures/kubernetes-schema/schemas.json', import.meta.url), 'utf8')) as { definitions: object, kinds: Record<string, object> }
const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false })
ajv.addSchema(schemas.definitions)
const schemaName = (manifest: Manifest) => {
  const [group, version] = manifest.apiVersion.includes('/') ? manifest.apiVersion.split('/') as [string, string] : ['', manifest.apiVersion]
  return [manifest.kind.toLowerCase(), group.split('.')[0], version].filter((part) => part !== '').join('-')
}
function invalid (manifests: Manifest[]): string[] {
  return manifests.flatMap((manifest) => {
    const name = schemaName(manifest)
    const schema = schemas.kinds[name]
    if (schema === undefined) return [`${manifest.kind}/${manifest.metadata.name}: no schema ${name} in the fixture (add it to trim.ts)`]
    const validate = ajv.getSchema(`https://kubernetes.io/api/${name}.json`) ?? ajv.compile({ ...schema, $id: `https://kubernetes.io/api/${name}.json` })
    return validate(manifest) ? [] : (validate.errors ?? []).map((error) => `${manifest.kind}/${manifest.metadata.name}${error.instancePath}: ${error.message ?? ''} ${JSON.stringify(error.params)}`)
  })
}
const root = new URL('.', dir).pathname
const componentPaths = readdirSync(new URL('components/', dir)).map((name) => `components/${name}`)

t.test('the rendered kustomization, alone and with each component, is valid Kubernetes 1.30', async (t) => {
  t.same(componentPaths.sort(), ['components/bootstrap-job', 'components/ingress-tls', 'components/persistent-audit'])
  for (const components of [[], ...componentPaths.map((path) => [path]), componentPaths]) {
    const rendered = kustomize(root, components)
    t.same(invalid(rendered), [], components.length === 0 ? 'the base' : components.join(' + '))
    t.ok(rendered.every((o) => o.kind === 'Namespace' || o.metadata.namespace === kustomization.namespace), 'every object in the namespace')
    const images = rendered.flatMap((o) => [...(o.spec?.template?.spec?.containers ?? []), ...(o.spec?.template?.spec?.initContainers ?? [])].map((c: Container) => c.image))
    t.ok(images.every((image) => /:[^:]+$/.test(image) && !image.endsWith(':latest')), 'every image pinned')
  }
  const broken = kustomize(root, [])
  const deployment = broken.find((o) => o.kind === 'Deployment') as Manifest
  deployment.spec.template.spec.containers[0].imagePullPolcy = 'Always'
  deployment.spec.replicas = 'two'
  const errors = invalid(broken).join('\n')
  t.match(errors, /containers\/0: must NOT have additional properties \{"additionalProperty":"imagePullPolcy"\}/, 'a misspelt field is refused')
  t.match(errors, /\/spec\/replicas: must be integer/, 'a wrong type is refused')
})

t.test('components/ingress-tls: HTTPS for PUBLIC_URL\'s host, to the callers\' port only', async (t) => {
  const ingress = kustomize(root, ['components/ingress-tls']).find((o) => o.kind === 'Ingress') as Manifest
  const host = new URL(env.PUBLIC_URL as string).hostname
  t.equal(new URL(env.PUBLIC_URL as string).protocol, 'https:')
  t.same(ingress.spec.tls, [{ hosts: [host], secretName: 'synapse-admin-gateway-tls' }])
  t.equal(ingress.spec.rules[0].host, host)
  t.same(ingress.spec.rules[0].http.paths[0].backend.service, { name: 'synapse-admin-gateway', port: { name: 'http' } })
})

t.test('components/persistent-audit: a StatefulSet whose replicas each keep an audit file on their own volume', async (t) => {
  const rendered = kustomize(root, ['components/persistent-audit'])
  t.notOk(rendered.some((o) => o.kind === 'Deployment' && o.metadata.name === 'synapse-admin-gateway'), 'no Deployment left')
  const set = rendered.find((o) => o.kind === 'StatefulSet') as Manifest
  const container = set.spec.template.spec.containers[0] as Container
  const auditFile = container.env?.find((entry) => entry.name === 'AUDIT_LOG_FILE')?.value as string
  const mount = container.volumeMounts?.find((m) => auditFile.startsWith(`${m.mountPath}/`))
  t.ok(mount !== undefined && mount.readOnly !== true, 'AUDIT_LOG_FILE is on a writable mount')
  t.same(set.spec.volumeClaimTemplates.map((claim: Manifest) => claim.metadata.name), [mount?.name], '…a volume claim per replica')
  t.same(set.spec.persistentVolumeClaimRetentionPolicy, { whenDeleted: 'Retain', whenScaled: 'Retain' }, 'the chains outlive the StatefulSet')
  t.equal(set.spec.replicas, gatewayDeployment.spec.replicas)
  t.ok(matches(find('PodDisruptionBudget', 'synapse-admin-gateway').spec.selector.matchLabels, set.spec.template.metadata.labels), 'the PodDisruptionBudget still selects the pods')
  t.equal(set.spec.template.spec.securityContext.fsGroup, 1000, 'the volume is writable by the node user')
  const local = mkdtempSync(join(tmpdir(), 'gateway-k8s-audit-'))
  const config = loadConfig({ ...env, SYNAPSE_ADMIN_TOKEN_FILE: undefined, SYNAPSE_ADMIN_TOKEN: 'syt_x', REDIS_URL_FILE: undefined, AUDIT_CHAIN_KEY_FILE: undefined, POLICY_FILE: undefined, AUDIT_LOG_FILE: join(local, 'audit.log') })
  t.equal(config.auditLogFile, join(local, 'audit.log'), 'the gateway takes the setting')
})

t.test('components/bootstrap-job: the Job stores the token where the gateway reads it', async (t) => {
  const rendered = kustomize(root, ['components/bootstrap-job'])
  const job = rendered.find((o) => o.kind === 'Job') as Manifest
  const bootstrap = job.spec.template.spec.initContainers[0] as Container
  const jobEnv = Object.fromEntries((bootstrap.env ?? []).map((entry) => [entry.name, entry.value as string]))
  t.same(bootstrap.command, ['/bin/sh', '-c'])
  t.match(bootstrap.args?.[0], /exec node dist\/bootstrap-admin\.js\n/, 'the image\'s bootstrap, configured by the environment')
  const storing = job.spec.template.spec.containers[0] as Container
  t.same(storing.args?.filter((arg: string) => arg.startsWith('--filename=')), [`--filename=${jobEnv.SECRET_MANIFEST_FILE}`], 'kubectl applies the manifest the bootstrap wrote')
  const role = rendered.find((o) => o.kind === 'Role') as Manifest
  t.ok(role.rules.some((rule: { resourceNames?: string[], verbs: string[] }) => rule.resourceNames?.includes(jobEnv.SECRET_NAME as string) && rule.verbs.includes('patch')), 'may update that Secret')
  t.equal(job.spec.template.spec.serviceAccountName, rendered.find((o) => o.kind === 'ServiceAccount')?.metadata.name)

  const gatewayPod = (rendered.find((o) => o.kind === 'Deployment' && o.metadata.name === 'synapse-admin-gateway') as Manifest).spec.template.spec
  const tokenMount = (gatewayPod.containers[0] as Container).volumeMounts?.find((m) => (env.SYNAPSE_ADMIN_TOKEN_FILE as string).startsWith(`${m.mountPath}/`))
  const sources = gatewayPod.volumes.find((v: { name: string }) => v.name === tokenMount?.name).projected.sources as Array<{ secret: { name: string, items?: Array<{ key: string, path: string }> } }>
  const tokenSource = sources.find((source) => source.secret.items?.some((item) => item.path === 'synapse_admin_token'))
  t.equal(tokenSource?.secret.name, jobEnv.SECRET_NAME, 'the gateway reads the token from the Secret the Job writes')

  // The Job's environment, with its mounted files in place, is a configuration the bootstrap takes.
  const local = mkdtempSync(join(tmpdir(), 'gateway-k8s-job-'))
  writeFileSync(join(local, 'registration_shared_secret'), 'from-synapse\n')
  const { bootstrapOptionsFrom } = await import('../../src/bootstrap-admin.js')
  const options = bootstrapOptionsFrom([], { ...jobEnv, REGISTRATION_SHARED_SECRET_FILE: join(local, 'registration_shared_secret') })
  t.match(options, { sharedSecret: 'from-synapse', tokenFile: '/work/synapse_admin_token', secretManifest: { file: '/work/secret.json', name: 'synapse-admin-gateway-admin' } })
})

const kubectl = (process.env.PATH ?? '').split(delimiter).map((folder) => join(folder, 'kubectl')).find((file) => existsSync(file))
t.test('kubectl kustomize builds what the test renderer builds', { skip: kubectl === undefined ? 'kubectl is not on the PATH: rendered by test/helpers/kustomize.ts only' : false }, async (t) => {
  const built = await promisify(execFile)(kubectl as string, ['kustomize', root])
  const objects = parseAllDocuments(built.stdout, { version: '1.1' }).map((document) => document.toJS() as Manifest)
  const key = (o: Manifest) => `${o.kind}/${o.metadata.name}`
  t.same(objects.map(key).sort(), kustomize(root).map(key).sort())
  t.same(invalid(objects), [])
})
