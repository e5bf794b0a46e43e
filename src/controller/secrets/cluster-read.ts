// What discovery reads from the API server, read once per plan (no informer:
// caching every Secret and Pod of a cluster for a plan made now and then
// would cost the controller memory all the time).
//
// Reads are paginated and each object is cut down to the fields discovery
// uses as it arrives, so a namespace with thousands of Pods or Helm release
// Secrets costs one page at a time, not the whole list. Only the namespaces
// the fronts call into (and spec.secrets names) are read, which is also what
// the RBAC needs to allow.
import type {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  ApiregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  V1Pod,
  V1Secret,
} from '@kubernetes/client-node';
import type { KubeAccess } from '../../kube/kubeconfig.js';
import type { SecretTargetsSpec } from '../../api/secret-targets.js';
import { isNotFound } from '../../kube/client.js';
import { decode, type DiscoveryInput, type FrontInfo, type PodInfo, type SecretInfo, type ServiceInfo, type ServiceRef } from './discovery.js';
import { BUILT_IN, CA_SECRET_ANNOTATION, CERT_MANAGER_ANNOTATION, READ_KEYS } from './known-layouts.js';

const READ_ANNOTATIONS: ReadonlySet<string> = new Set([CA_SECRET_ANNOTATION, CERT_MANAGER_ANNOTATION]);

/** What the Secrets scope reads; the controller wires the API server's, tests may pass their own. */
export interface SecretTargetSource {
  read(spec: SecretTargetsSpec): Promise<DiscoveryInput>;
}

const PAGE = 250;
/** Secrets come in smaller pages: a Helm release Secret alone can be a megabyte. */
const SECRET_PAGE = 50;
/** Namespaces read at once. */
const CONCURRENCY = 4;

interface Page<T> {
  items: T[];
  metadata?: { _continue?: string };
}

async function eachItem<T>(list: (cont: string | undefined) => Promise<Page<T>>, visit: (item: T) => void): Promise<void> {
  let cont: string | undefined;
  do {
    const page = await list(cont);
    for (const item of page.items) visit(item);
    cont = page.metadata?._continue || undefined;
  } while (cont);
}

export class ApiSecretTargetSource implements SecretTargetSource {
  private readonly admission: AdmissionregistrationV1Api;
  private readonly registration: ApiregistrationV1Api;
  private readonly extensions: ApiextensionsV1Api;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly discovery: DiscoveryV1Api;

  constructor(kc: KubeAccess, private readonly now: () => Date = () => new Date()) {
    this.admission = kc.api((m) => m.AdmissionregistrationV1Api);
    this.registration = kc.api((m) => m.ApiregistrationV1Api);
    this.extensions = kc.api((m) => m.ApiextensionsV1Api);
    this.apps = kc.api((m) => m.AppsV1Api);
    this.core = kc.api((m) => m.CoreV1Api);
    this.discovery = kc.api((m) => m.DiscoveryV1Api);
  }

  async read(spec: SecretTargetsSpec): Promise<DiscoveryInput> {
    const fronts = await this.fronts(spec);
    const wanted = new Set<string>([
      ...fronts.map((f) => f.service.namespace),
      ...(spec.secretRefs ?? []).map((r) => r.namespace),
      ...Object.values(BUILT_IN).map((b) => b.secret.namespace),
    ]);
    const namespaces = [...wanted].filter((ns) => !spec.namespaces || spec.namespaces.includes(ns)).sort();
    const input: DiscoveryInput = { fronts, services: [], pods: [], replicaSetOwners: new Map(), secrets: [], now: this.now() };
    for (let i = 0; i < namespaces.length; i += CONCURRENCY) {
      await Promise.all(namespaces.slice(i, i + CONCURRENCY).map((ns) => this.readNamespace(ns, input)));
    }
    await this.readAnnotatedCas(input, new Set(namespaces));
    return input;
  }

  /**
   * Every front, or only the kinds spec.secrets names when it names some (fewer objects to read).
   * A Secret named by reference may be fronted by any kind, and its fronts are what say which
   * Service serves it and which caBundle trusts it: with secretRefs every kind is read.
   */
  private async fronts(spec: SecretTargetsSpec): Promise<FrontInfo[]> {
    const namesFronts = !!(spec.webhookConfigurations?.length || spec.apiServices?.length || spec.conversionWebhooks?.length);
    const namesAnything = namesFronts || !!(spec.secretRefs?.length || spec.builtIn?.length);
    const all = !namesAnything || !!spec.secretRefs?.length;
    const out: FrontInfo[] = [];
    const webhooks = all || !!spec.webhookConfigurations?.length || !!spec.builtIn?.length;
    const reads: Promise<void>[] = [];
    if (webhooks) {
      const visit = (kind: FrontInfo['kind']) => (c: { metadata?: { name?: string }; webhooks?: { clientConfig: { service?: { namespace: string; name: string }; caBundle?: string } }[] }) => {
        for (const w of c.webhooks ?? []) {
          const svc = w.clientConfig.service;
          if (svc) out.push(front(kind, c.metadata?.name ?? '', svc, w.clientConfig.caBundle));
        }
      };
      reads.push(eachItem((cont) => this.admission.listValidatingWebhookConfiguration({ limit: PAGE, _continue: cont }), visit('ValidatingWebhookConfiguration')));
      reads.push(eachItem((cont) => this.admission.listMutatingWebhookConfiguration({ limit: PAGE, _continue: cont }), visit('MutatingWebhookConfiguration')));
    }
    if (all || spec.apiServices?.length) {
      reads.push(
        eachItem(
          (cont) => this.registration.listAPIService({ limit: PAGE, _continue: cont }),
          (a) => {
            const svc = a.spec?.service;
            if (svc?.name && svc.namespace) out.push(front('APIService', a.metadata?.name ?? '', { namespace: svc.namespace, name: svc.name }, a.spec?.caBundle));
          },
        ),
      );
    }
    if (all || spec.conversionWebhooks?.length) {
      reads.push(
        eachItem(
          (cont) => this.extensions.listCustomResourceDefinition({ limit: PAGE, _continue: cont }),
          (crd) => {
            const cfg = crd.spec.conversion?.webhook?.clientConfig;
            if (crd.spec.conversion?.strategy === 'Webhook' && cfg?.service) out.push(front('CustomResourceDefinition', crd.metadata?.name ?? '', cfg.service, cfg.caBundle));
          },
        ),
      );
    }
    await Promise.all(reads);
    return out.sort((a, b) => (`${a.kind}/${a.name}` < `${b.kind}/${b.name}` ? -1 : 1));
  }

  private async readNamespace(namespace: string, input: DiscoveryInput): Promise<void> {
    const slices = new Map<string, string[]>();
    const services: ServiceInfo[] = [];
    await Promise.all([
      eachItem(
        (cont) => this.core.listNamespacedService({ namespace, limit: PAGE, _continue: cont }),
        (s) => services.push({ namespace, name: s.metadata?.name ?? '', ...(s.spec?.selector ? { selector: s.spec.selector } : {}), endpointPods: [] }),
      ),
      eachItem(
        (cont) => this.discovery.listNamespacedEndpointSlice({ namespace, limit: PAGE, _continue: cont }),
        (es) => {
          const svc = es.metadata?.labels?.['kubernetes.io/service-name'];
          if (!svc) return;
          const pods = (es.endpoints ?? []).flatMap((e) => (e.targetRef?.kind === 'Pod' && e.targetRef.name ? [e.targetRef.name] : []));
          slices.set(svc, [...(slices.get(svc) ?? []), ...pods]);
        },
      ),
      eachItem((cont) => this.core.listNamespacedPod({ namespace, limit: PAGE, _continue: cont }), (p) => input.pods.push(podInfo(p))),
      eachItem(
        (cont) => this.apps.listNamespacedReplicaSet({ namespace, limit: PAGE, _continue: cont }),
        (rs) => {
          const owner = rs.metadata?.ownerReferences?.find((o) => o.controller);
          if (owner) input.replicaSetOwners.set(`${namespace}/${rs.metadata?.name}`, { kind: owner.kind, name: owner.name });
        },
      ),
      eachItem((cont) => this.core.listNamespacedSecret({ namespace, limit: SECRET_PAGE, _continue: cont }), (s) => input.secrets.push(secretInfo(s))),
    ]);
    for (const s of services) input.services.push({ ...s, endpointPods: slices.get(s.name) ?? [] });
  }

  /** CA Secrets that an annotation places in a namespace not read above: one GET each. */
  private async readAnnotatedCas(input: DiscoveryInput, read: Set<string>): Promise<void> {
    const refs = new Map<string, ServiceRef>();
    for (const s of input.secrets) {
      const a = s.annotations[CA_SECRET_ANNOTATION];
      const [ns, name] = a?.includes('/') ? a.split('/') : [];
      if (ns && name && !read.has(ns)) refs.set(`${ns}/${name}`, { namespace: ns, name });
    }
    for (const ref of refs.values()) {
      try {
        input.secrets.push(secretInfo(await this.core.readNamespacedSecret(ref)));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
}

function front(kind: FrontInfo['kind'], name: string, service: { namespace: string; name: string }, caBundle: string | undefined): FrontInfo {
  const pem = decode(caBundle);
  return { kind, name, service: { namespace: service.namespace, name: service.name }, ...(pem ? { caBundle: pem } : {}) };
}

function podInfo(p: V1Pod): PodInfo {
  const owner = p.metadata?.ownerReferences?.find((o) => o.controller);
  const secretNames = new Set<string>();
  for (const v of p.spec?.volumes ?? []) {
    if (v.secret?.secretName) secretNames.add(v.secret.secretName);
    for (const src of v.projected?.sources ?? []) if (src.secret?.name) secretNames.add(src.secret.name);
  }
  return {
    namespace: p.metadata?.namespace ?? '',
    name: p.metadata?.name ?? '',
    labels: p.metadata?.labels ?? {},
    ...(owner ? { owner: { kind: owner.kind, name: owner.name } } : {}),
    secretNames: [...secretNames],
  };
}

/**
 * Only the data keys and annotations discovery reads are kept: a Helm release
 * or a token in the same namespace is dropped at once, and so is
 * kubectl's last-applied-configuration, which repeats a Secret's data.
 */
function secretInfo(s: V1Secret): SecretInfo {
  return {
    namespace: s.metadata?.namespace ?? '',
    name: s.metadata?.name ?? '',
    labels: s.metadata?.labels ?? {},
    annotations: only(s.metadata?.annotations, READ_ANNOTATIONS),
    data: only(s.data, READ_KEYS),
  };
}

function only(map: Record<string, string> | undefined, keys: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(map ?? {})) if (keys.has(k)) out[k] = v;
  return out;
}
