/**
 * What `kubectl kustomize` does with deploy/kubernetes, for the features it uses: resources
 * (files), components with their resources and JSON 6902 patches (add, remove, replace; a
 * change of kind only with `allowKindChange`, as kustomize insists), then the kustomization's
 * namespace and images. Anything else in a kustomization is refused, so that a new feature
 * cannot slip past the tests unrendered.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse, parseAllDocuments } from 'yaml'

export interface Manifest { apiVersion: string, kind: string, metadata: { name: string, namespace?: string, labels?: Record<string, string> }, [key: string]: any }
interface Target { group?: string, version?: string, kind?: string, name?: string }
interface Patch { target: Target, patch: string, options?: { allowKindChange?: boolean, allowNameChange?: boolean } }
interface Kustomization {
  kind?: string
  namespace?: string
  resources?: string[]
  components?: string[]
  patches?: Patch[]
  images?: Array<{ name: string, newName?: string, newTag?: string }>
}

const KNOWN = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'components', 'patches', 'images'])
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume'])

export function readManifests (file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' }).map((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]?.message ?? ''}`)
    return document.toJS() as Manifest
  })
}

function readKustomization (dir: string, kind: 'Kustomization' | 'Component'): Kustomization {
  const kustomization = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization
  if (kustomization.kind !== kind) throw new Error(`${dir}: kind ${String(kustomization.kind)}, expected ${kind}`)
  const unknown = Object.keys(kustomization).filter((key) => !KNOWN.has(key))
  if (unknown.length > 0) throw new Error(`${dir}: this renderer does not know ${unknown.join(', ')}`)
  return kustomization
}

const groupOf = (apiVersion: string) => apiVersion.includes('/') ? apiVersion.split('/')[0] as string : ''
const versionOf = (apiVersion: string) => apiVersion.split('/').at(-1) as string
const matches = (target: Target, manifest: Manifest) =>
  (target.group === undefined || target.group === groupOf(manifest.apiVersion)) &&
  (target.version === undefined || target.version === versionOf(manifest.apiVersion)) &&
  (target.kind === undefined || target.kind === manifest.kind) &&
  (target.name === undefined || target.name === manifest.metadata.name)

/** RFC 6902 add, remove and replace on a JSON pointer. */
function applyOperation (document: any, operation: { op: string, path: string, value?: unknown }): void {
  const keys = operation.path.split('/').slice(1).map((key) => key.replaceAll('~1', '/').replaceAll('~0', '~'))
  const last = keys.pop() as string
  let parent = document
  for (const key of keys) {
    parent = parent?.[Array.isArray(parent) ? Number(key) : key]
    if (parent === undefined) throw new Error(`patch path ${operation.path} does not exist`)
  }
  const index = Array.isArray(parent) ? (last === '-' ? parent.length : Number(last)) : undefined
  const exists = index === undefined ? Object.hasOwn(parent, last) : index < parent.length
  const value = structuredClone(operation.value)
  switch (operation.op) {
    case 'add':
      if (index === undefined) parent[last] = value
      else parent.splice(index, 0, value)
      return
    case 'remove':
    case 'replace':
      if (!exists) throw new Error(`patch ${operation.op} ${operation.path}: nothing there`)
      if (operation.op === 'replace') {
        if (index === undefined) parent[last] = value
        else parent[index] = value
      } else if (index === undefined) Reflect.deleteProperty(parent, last)
      else parent.splice(index, 1)
      return
    default:
      throw new Error(`patch op ${operation.op} is not supported here`)
  }
}

function applyPatch (manifests: Manifest[], patch: Patch, where: string): void {
  const operations = parse(patch.patch) as unknown
  if (!Array.isArray(operations)) throw new Error(`${where}: only JSON 6902 patches (a list of operations) are rendered here`)
  const targets = manifests.filter((manifest) => matches(patch.target, manifest))
  if (targets.length === 0) throw new Error(`${where}: the patch's target ${JSON.stringify(patch.target)} matches nothing`)
  for (const manifest of targets) {
    const before = `${manifest.kind}/${manifest.metadata.name}`
    for (const operation of operations) applyOperation(manifest, operation)
    if (manifest.kind !== before.split('/')[0] && patch.options?.allowKindChange !== true) throw new Error(`${where}: the patch changes the kind of ${before} without allowKindChange`)
    if (manifest.metadata.name !== before.split('/')[1] && patch.options?.allowNameChange !== true) throw new Error(`${where}: the patch renames ${before} without allowNameChange`)
  }
}

/** The objects `kubectl kustomize <dir>` prints, with `components` in place of the kustomization's own when given. */
export function kustomize (dir: string, components?: string[]): Manifest[] {
  const kustomization = readKustomization(dir, 'Kustomization')
  const manifests = (kustomization.resources ?? []).flatMap((file) => readManifests(join(dir, file)))
  for (const path of components ?? kustomization.components ?? []) {
    const componentDir = join(dir, path)
    const component = readKustomization(componentDir, 'Component')
    manifests.push(...(component.resources ?? []).flatMap((file) => readManifests(join(componentDir, file))))
    for (const patch of component.patches ?? []) applyPatch(manifests, patch, path)
  }
  for (const patch of kustomization.patches ?? []) applyPatch(manifests, patch, dir)
  for (const manifest of manifests) {
    if (kustomization.namespace !== undefined && !CLUSTER_SCOPED.has(manifest.kind)) manifest.metadata.namespace = kustomization.namespace
    const pod = manifest.spec?.template?.spec
    for (const container of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])] as Array<{ image: string }>) {
      const name = container.image.split(/[:@]/)[0]
      const image = (kustomization.images ?? []).find((entry) => entry.name === name)
      if (image !== undefined) container.image = `${image.newName ?? name}:${image.newTag ?? container.image.split(':')[1] ?? 'latest'}`
    }
  }
  return manifests
}
