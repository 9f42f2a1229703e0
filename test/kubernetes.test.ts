/**
 * No cluster runs here, so deploy/kubernetes/ is checked by reading it: every manifest parses
 * (as YAML 1.1, as Kubernetes reads it), the kustomization lists every manifest but the Secret
 * template, and the properties an operator relies on hold: two hardened replicas with probes,
 * limits, a pre-stop delay that fits the shutdown grace, secrets and the policy as files, a
 * Service, a PodDisruptionBudget and a Valkey that select the right pods. The gateway's
 * environment is fed to the real loadConfig with the Secret and ConfigMap files where the pod
 * would have them mounted. With kubectl on the PATH, `kubectl kustomize` builds the set too.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parse, parseAllDocuments } from 'yaml'
import { loadConfig } from '../src/config.js'

const dir = new URL('../deploy/kubernetes/', import.meta.url)
const readYaml = (file: string) => parseAllDocuments(readFileSync(new URL(file, dir), 'utf8'), { version: '1.1' })
  .map((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]?.message ?? ''}`)
    return document.toJS() as Manifest
  })

interface Manifest { apiVersion: string, kind: string, metadata: { name: string, namespace?: string, labels?: Record<string, string> }, [key: string]: any }
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
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8')
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
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8')
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
      ? Object.fromEntries(Object.keys(template.stringData).map((key) => [key, `${key}-value-of-at-least-sixteen-bytes\n`]))
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
    redisUrl: env.REDIS_URL,
    shutdownGraceMs: Number(env.SHUTDOWN_GRACE_MS),
    synapse: { adminToken: 'synapse_admin_token-value-of-at-least-sixteen-bytes' },
    jwt: { verification: { kind: 'jwks' } }
  })
})

t.test('the Service, the PodDisruptionBudget and Valkey select the right pods', async (t) => {
  const podLabels = gatewayDeployment.spec.template.metadata.labels
  const service = find('Service', 'synapse-admin-gateway')
  t.ok(matches(service.spec.selector, podLabels), 'the Service selects the gateway pods')
  for (const port of service.spec.ports as Array<{ targetPort: string }>) {
    t.ok(gateway.ports?.some((p) => p.name === port.targetPort), `Service port ${port.targetPort} exists on the container`)
  }
  const pdb = find('PodDisruptionBudget', 'synapse-admin-gateway')
  t.equal(pdb.spec.minAvailable, 1)
  t.ok(pdb.spec.minAvailable < gatewayDeployment.spec.replicas, 'a drain can still evict one pod')
  t.ok(matches(pdb.spec.selector.matchLabels, podLabels), 'the PodDisruptionBudget selects the gateway pods')
  t.notOk(matches(pdb.spec.selector.matchLabels, valkeyDeployment.spec.template.metadata.labels), '…and not Valkey')

  const valkeyService = find('Service', 'valkey')
  t.ok(matches(valkeyService.spec.selector, valkeyDeployment.spec.template.metadata.labels), 'the valkey Service selects Valkey')
  t.notOk(matches(valkeyService.spec.selector, podLabels))
  const redis = new URL(env.REDIS_URL as string)
  t.equal(redis.hostname, valkeyService.metadata.name, 'REDIS_URL names the valkey Service')
  t.equal(Number(redis.port), valkeyService.spec.ports[0].port)
  t.equal(valkeyDeployment.spec.replicas, 1, 'one Valkey: never two with different data behind one Service')
  const networkPolicy = find('NetworkPolicy', 'valkey')
  t.ok(matches(networkPolicy.spec.podSelector.matchLabels, valkeyDeployment.spec.template.metadata.labels), 'the NetworkPolicy guards Valkey')
  t.ok(matches(networkPolicy.spec.ingress[0].from[0].podSelector.matchLabels, podLabels), '…letting the gateway pods in')
})

const kubectl = (process.env.PATH ?? '').split(delimiter).map((folder) => join(folder, 'kubectl')).find((file) => existsSync(file))
t.test('kubectl kustomize builds the set', { skip: kubectl === undefined ? 'kubectl is not on the PATH: the manifests are checked by parsing them only' : false }, async (t) => {
  const built = await promisify(execFile)(kubectl as string, ['kustomize', new URL('.', dir).pathname])
  const objects = parseAllDocuments(built.stdout, { version: '1.1' }).map((document) => document.toJS() as Manifest)
  t.same(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort())
  t.ok(objects.every((o) => o.kind === 'Namespace' || o.metadata.namespace === kustomization.namespace))
})
