// The API server behind a Secrets run (target-steps.ts's SecretRunCluster).
// Every method is one or two requests; nothing is cached, because each step
// must act on what is there now (another controller may have touched the
// Secret, the workload or a caBundle since the last pass).
//
// Secrets are replaced whole, read-modify-write, with the resourceVersion the
// step read: a Secret changed in between is refused (409) and the step runs
// again on the fresh object. Only data, type, labels and annotations come
// from the step; ownerReferences, finalizers and the rest stay as they are,
// so a Helm- or operator-owned Secret keeps its owner.
import type {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  ApiregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  V1Secret,
} from '@kubernetes/client-node';
import { setHeaderOptions } from '@kubernetes/client-node/dist/middleware.js';
import { PatchStrategy } from '@kubernetes/client-node/dist/patch.js';
import type { KubeAccess } from '../../kube/kubeconfig.js';
import { ConflictError, isAlreadyExists, isNotFound, MERGE_PATCH } from '../../kube/client.js';
import type { SecretRef } from '../../api/secret-targets.js';
import type { SecretObject } from './backup.js';
import type { JsonPatchOp } from './ca-bundle.js';
import type { ServiceRef } from './discovery.js';
import type { NamespaceInfo, ProbeRequest } from './probe-request.js';
import type { LiveFrontObject, LiveWorkload, SecretRunCluster } from './target-steps.js';
import type { Endpoint } from './verify-served.js';

const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

async function orUndefined<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function splitKind(kindName: string): { kind: string; name: string } {
  const slash = kindName.indexOf('/');
  return { kind: kindName.slice(0, slash), name: kindName.slice(slash + 1) };
}

function toObject(s: V1Secret): SecretObject & { metadata: { ownerReferences?: object[] } } {
  return {
    metadata: {
      namespace: s.metadata?.namespace ?? '',
      name: s.metadata?.name ?? '',
      ...(s.metadata?.resourceVersion ? { resourceVersion: s.metadata.resourceVersion } : {}),
      ...(s.metadata?.labels ? { labels: s.metadata.labels } : {}),
      ...(s.metadata?.annotations ? { annotations: s.metadata.annotations } : {}),
      ...(s.metadata?.ownerReferences ? { ownerReferences: s.metadata.ownerReferences } : {}),
    },
    ...(s.type ? { type: s.type } : {}),
    ...(s.data ? { data: s.data } : {}),
  };
}

export class ApiSecretRunCluster implements SecretRunCluster {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private readonly registration: ApiregistrationV1Api;
  private readonly extensions: ApiextensionsV1Api;
  private readonly discovery: DiscoveryV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(kc: KubeAccess) {
    this.core = kc.api((m) => m.CoreV1Api);
    this.apps = kc.api((m) => m.AppsV1Api);
    this.admission = kc.api((m) => m.AdmissionregistrationV1Api);
    this.registration = kc.api((m) => m.ApiregistrationV1Api);
    this.extensions = kc.api((m) => m.ApiextensionsV1Api);
    this.discovery = kc.api((m) => m.DiscoveryV1Api);
    this.custom = kc.api((m) => m.CustomObjectsApi);
  }

  async getSecret(ref: SecretRef): Promise<SecretObject | undefined> {
    const s = await orUndefined(this.core.readNamespacedSecret(ref));
    return s ? toObject(s) : undefined;
  }

  async createSecret(secret: SecretObject & { metadata: { ownerReferences?: object[] } }): Promise<'created' | 'exists'> {
    try {
      await this.core.createNamespacedSecret({ namespace: secret.metadata.namespace, body: { apiVersion: 'v1', kind: 'Secret', ...secret } as V1Secret });
      return 'created';
    } catch (err) {
      if (isAlreadyExists(err)) return 'exists';
      throw err;
    }
  }

  async updateSecret(secret: SecretObject): Promise<void> {
    const { namespace, name, resourceVersion } = secret.metadata;
    const live = await this.core.readNamespacedSecret({ namespace, name });
    if (resourceVersion && live.metadata?.resourceVersion !== resourceVersion) throw new ConflictError('secrets', `${namespace}/${name}`, resourceVersion);
    const body: V1Secret = {
      ...live,
      metadata: { ...live.metadata, labels: secret.metadata.labels ?? {}, annotations: secret.metadata.annotations ?? {} },
      ...(secret.type ? { type: secret.type } : {}),
      data: secret.data ?? {},
    };
    await this.core.replaceNamespacedSecret({ namespace, name, body });
  }

  async deleteSecret(ref: SecretRef): Promise<void> {
    await orUndefined(this.core.deleteNamespacedSecret(ref));
  }

  async getWorkload(namespace: string, workload: string): Promise<LiveWorkload | undefined> {
    const { kind, name } = splitKind(workload);
    const read = (): Promise<unknown> => {
      switch (kind) {
        case 'Deployment':
          return this.apps.readNamespacedDeployment({ namespace, name });
        case 'DaemonSet':
          return this.apps.readNamespacedDaemonSet({ namespace, name });
        case 'StatefulSet':
          return this.apps.readNamespacedStatefulSet({ namespace, name });
        default:
          throw new Error(`${workload}: certrotator rolls Deployments, DaemonSets and StatefulSets only`);
      }
    };
    const w = await orUndefined(read());
    return w ? ({ ...(w as object), kind } as LiveWorkload) : undefined;
  }

  async patchTemplateAnnotations(namespace: string, workload: string, annotations: Record<string, string | null>): Promise<void> {
    const { kind, name } = splitKind(workload);
    const body = { spec: { template: { metadata: { annotations } } } };
    if (kind === 'Deployment') await this.apps.patchNamespacedDeployment({ namespace, name, body }, MERGE_PATCH);
    else if (kind === 'DaemonSet') await this.apps.patchNamespacedDaemonSet({ namespace, name, body }, MERGE_PATCH);
    else if (kind === 'StatefulSet') await this.apps.patchNamespacedStatefulSet({ namespace, name, body }, MERGE_PATCH);
    else throw new Error(`${workload}: certrotator rolls Deployments, DaemonSets and StatefulSets only`);
  }

  async getFront(front: string): Promise<LiveFrontObject | undefined> {
    const { kind, name } = splitKind(front);
    const read = (): Promise<unknown> => {
      switch (kind) {
        case 'ValidatingWebhookConfiguration':
          return this.admission.readValidatingWebhookConfiguration({ name });
        case 'MutatingWebhookConfiguration':
          return this.admission.readMutatingWebhookConfiguration({ name });
        case 'APIService':
          return this.registration.readAPIService({ name });
        case 'CustomResourceDefinition':
          return this.extensions.readCustomResourceDefinition({ name });
        default:
          throw new Error(`${front}: not a kind whose caBundle certrotator keeps`);
      }
    };
    const f = await orUndefined(read());
    return f ? ({ ...(f as object), kind } as LiveFrontObject) : undefined;
  }

  async patchFront(front: string, ops: JsonPatchOp[]): Promise<void> {
    const { kind, name } = splitKind(front);
    const body = ops;
    if (kind === 'ValidatingWebhookConfiguration') await this.admission.patchValidatingWebhookConfiguration({ name, body }, jsonPatch);
    else if (kind === 'MutatingWebhookConfiguration') await this.admission.patchMutatingWebhookConfiguration({ name, body }, jsonPatch);
    else if (kind === 'APIService') await this.registration.patchAPIService({ name, body }, jsonPatch);
    else if (kind === 'CustomResourceDefinition') await this.extensions.patchCustomResourceDefinition({ name, body }, jsonPatch);
    else throw new Error(`${front}: not a kind whose caBundle certrotator keeps`);
  }

  async deleteFront(front: string): Promise<void> {
    const { kind, name } = splitKind(front);
    if (kind === 'ValidatingWebhookConfiguration') await orUndefined(this.admission.deleteValidatingWebhookConfiguration({ name }));
    else if (kind === 'MutatingWebhookConfiguration') await orUndefined(this.admission.deleteMutatingWebhookConfiguration({ name }));
    else throw new Error(`${front}: certrotator deletes only webhook configurations (a Regenerate procedure's)`);
  }

  async putFront(front: string, object: object): Promise<void> {
    const { kind, name } = splitKind(front);
    if (kind !== 'ValidatingWebhookConfiguration' && kind !== 'MutatingWebhookConfiguration') throw new Error(`${front}: certrotator puts back only webhook configurations (a Regenerate procedure's)`);
    const live = (await this.getFront(front)) as { metadata?: { resourceVersion?: string } } | undefined;
    const o = object as { metadata?: object };
    const body = { ...o, apiVersion: 'admissionregistration.k8s.io/v1', kind, metadata: { ...(o.metadata ?? {}), name, ...(live?.metadata?.resourceVersion ? { resourceVersion: live.metadata.resourceVersion } : {}) } };
    if (kind === 'ValidatingWebhookConfiguration') {
      if (live) await this.admission.replaceValidatingWebhookConfiguration({ name, body: body as never });
      else await this.admission.createValidatingWebhookConfiguration({ body: body as never });
    } else if (live) await this.admission.replaceMutatingWebhookConfiguration({ name, body: body as never });
    else await this.admission.createMutatingWebhookConfiguration({ body: body as never });
  }

  async endpoints(service: ServiceRef, port: number): Promise<Endpoint[]> {
    const svc = await orUndefined(this.core.readNamespacedService(service));
    const servicePort = svc?.spec?.ports?.find((p) => p.port === port);
    if (!servicePort) return [];
    const slices = await this.discovery.listNamespacedEndpointSlice({ namespace: service.namespace, labelSelector: `kubernetes.io/service-name=${service.name}` });
    const out: Endpoint[] = [];
    for (const slice of slices.items) {
      // The slice's port of the same name as the Service's port (unnamed when the Service has one port).
      const p = slice.ports?.find((sp) => (sp.name ?? '') === (servicePort.name ?? ''));
      if (!p?.port) continue;
      for (const e of slice.endpoints ?? []) {
        if (e.conditions?.ready === false) continue;
        for (const address of e.addresses) out.push({ address, port: p.port });
      }
    }
    return out;
  }

  async namespaces(): Promise<NamespaceInfo[]> {
    const list = await this.core.listNamespace();
    return list.items.map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} }));
  }

  async send(request: ProbeRequest): Promise<void> {
    if (request.kind === 'Get') {
      const [, , group, version] = request.path.split('/');
      await this.custom.getAPIResources({ group: group!, version: version! });
      return;
    }
    await this.core.createNamespacedConfigMap({
      namespace: request.namespace,
      dryRun: 'All',
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'certrotator-probe-', namespace: request.namespace, labels: request.labels }, data: {} },
    });
  }
}
