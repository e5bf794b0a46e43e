// An in-memory SecretRunCluster for the unit tests of target-steps.ts and
// run-secrets.ts. Only the cluster's bookkeeping is faked (objects, resource
// versions, a workload controller that rolls or does not); what is served is
// a real TLS server the test restarts when the fake "replaces the pods", and
// the certificates are judged by openssl in the tests. The real API server
// plays this part in test/e2e/secret-run.e2e.test.ts.
import { ConflictError } from '../../kube/client.js';
import type { SecretRef } from '../../api/secret-targets.js';
import type { SecretObject } from './backup.js';
import type { JsonPatchOp } from './ca-bundle.js';
import type { ServiceRef } from './discovery.js';
import type { NamespaceInfo, ProbeRequest } from './probe-request.js';
import type { LiveFrontObject, LiveWorkload, SecretRunCluster } from './target-steps.js';
import type { Endpoint } from './verify-served.js';

type StoredSecret = SecretObject & { metadata: { ownerReferences?: object[] } };

const key = (r: { namespace: string; name: string }): string => `${r.namespace}/${r.name}`;
const clone = <T>(v: T): T => structuredClone(v);

export class FakeSecretRunCluster implements SecretRunCluster {
  readonly secrets = new Map<string, StoredSecret>();
  readonly workloads = new Map<string, LiveWorkload>();
  readonly fronts = new Map<string, LiveFrontObject>();
  readonly sent: ProbeRequest[] = [];
  /** Every write, in order ("update hooks/hook-tls", "patch Deployment hooks/hook", …). */
  readonly writes: string[] = [];
  endpointList: Endpoint[] = [];
  namespaceList: NamespaceInfo[] = [{ name: 'hooks', labels: {} }];
  /** What the API server answers a probe with; undefined: success. */
  probeError: string | undefined;
  /**
   * The workload controller: whether a template with these annotations rolls out.
   * Called on every change of the template; `onRolled` runs when it has (the test restarts its server there).
   */
  rolls: (annotations: Record<string, string>) => boolean = () => true;
  onRolled: (namespace: string, workload: string) => Promise<void> | void = () => undefined;
  /** Runs when a rollout that takes `rollReads` looks starts: the first new pod is up, old ones still serve. */
  onRollStarted: (namespace: string, workload: string) => Promise<void> | void = () => undefined;
  /** How many reads of the workload a rollout that rolls stays in progress (0: done at once). */
  rollReads = 0;
  private rv = 1;
  private pending = new Map<string, number>();

  putSecret(s: StoredSecret): void {
    this.secrets.set(key(s.metadata), { ...clone(s), metadata: { ...clone(s.metadata), resourceVersion: String(this.rv++) } });
  }

  putDeployment(namespace: string, name: string, annotations: Record<string, string> = {}): void {
    this.workloads.set(`${namespace}/Deployment/${name}`, {
      kind: 'Deployment',
      metadata: { namespace, name, generation: 1 },
      spec: { replicas: 1, template: { metadata: { annotations } } },
      status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
    });
  }

  /** A ValidatingWebhookConfiguration with one webhook that calls `service` on 443 and covers ConfigMap CREATE (so it can be probed). */
  putValidatingWebhook(name: string, service: ServiceRef, caBundleB64: string): void {
    this.fronts.set(`ValidatingWebhookConfiguration/${name}`, {
      kind: 'ValidatingWebhookConfiguration',
      webhooks: [
        {
          name,
          clientConfig: { service: { ...service, port: 443 }, caBundle: caBundleB64 },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
          sideEffects: 'None',
          failurePolicy: 'Fail',
        },
      ],
    });
  }

  async getSecret(ref: SecretRef): Promise<SecretObject | undefined> {
    const s = this.secrets.get(key(ref));
    return s ? clone(s) : undefined;
  }

  async createSecret(secret: StoredSecret): Promise<'created' | 'exists'> {
    if (this.secrets.has(key(secret.metadata))) return 'exists';
    this.writes.push(`create ${key(secret.metadata)}`);
    this.putSecret(secret);
    return 'created';
  }

  async updateSecret(secret: SecretObject): Promise<void> {
    const live = this.secrets.get(key(secret.metadata));
    if (!live) throw Object.assign(new Error(`secrets "${secret.metadata.name}" not found`), { code: 404 });
    if (secret.metadata.resourceVersion && secret.metadata.resourceVersion !== live.metadata.resourceVersion) throw new ConflictError('secrets', key(secret.metadata), secret.metadata.resourceVersion);
    this.writes.push(`update ${key(secret.metadata)}`);
    this.putSecret({ ...live, metadata: { ...live.metadata, labels: secret.metadata.labels ?? {}, annotations: secret.metadata.annotations ?? {} }, type: secret.type ?? live.type, data: secret.data ?? {} });
  }

  async deleteSecret(ref: SecretRef): Promise<void> {
    if (this.secrets.delete(key(ref))) this.writes.push(`delete ${key(ref)}`);
  }

  async getWorkload(namespace: string, workload: string): Promise<LiveWorkload | undefined> {
    const k = `${namespace}/${workload}`;
    const w = this.workloads.get(k);
    const left = this.pending.get(k);
    if (w && left !== undefined) {
      if (left > 0) this.pending.set(k, left - 1);
      else {
        this.pending.delete(k);
        w.status = { observedGeneration: w.metadata.generation, replicas: 1, updatedReplicas: 1, availableReplicas: 1 };
        await this.onRolled(namespace, workload);
      }
    }
    return w ? clone(w) : undefined;
  }

  async patchTemplateAnnotations(namespace: string, workload: string, annotations: Record<string, string | null>): Promise<void> {
    const w = this.workloads.get(`${namespace}/${workload}`);
    if (!w) throw Object.assign(new Error(`${workload} not found`), { code: 404 });
    this.writes.push(`patch ${workload} ${namespace}`);
    const current = { ...(w.spec?.template?.metadata?.annotations ?? {}) };
    for (const [k, v] of Object.entries(annotations)) {
      if (v === null) delete current[k];
      else current[k] = v;
    }
    w.spec = { ...w.spec, template: { metadata: { annotations: current } } };
    w.metadata.generation = (w.metadata.generation ?? 1) + 1;
    // The controller observes the change at once; the pods are replaced only if the template rolls.
    const rolled = this.rolls(current);
    const inProgress = !rolled || this.rollReads > 0;
    w.status = inProgress
      ? { observedGeneration: w.metadata.generation, replicas: 2, updatedReplicas: 1, availableReplicas: 1 }
      : { observedGeneration: w.metadata.generation, replicas: 1, updatedReplicas: 1, availableReplicas: 1 };
    this.pending.delete(`${namespace}/${workload}`);
    if (rolled && this.rollReads > 0) {
      this.pending.set(`${namespace}/${workload}`, this.rollReads);
      await this.onRollStarted(namespace, workload);
    } else if (rolled) await this.onRolled(namespace, workload);
  }

  async getFront(front: string): Promise<LiveFrontObject | undefined> {
    const f = this.fronts.get(front);
    return f ? clone(f) : undefined;
  }

  /** Runs before a front's patch is applied: another writer's change in between. */
  beforePatchFront: (front: LiveFrontObject) => void = () => undefined;

  async patchFront(front: string, ops: JsonPatchOp[]): Promise<void> {
    const f = this.fronts.get(front);
    if (f) this.beforePatchFront(f);
    if (!f) throw Object.assign(new Error(`${front} not found`), { code: 404 });
    this.writes.push(`patch ${front}`);
    for (const op of ops) {
      const path = op.path.split('/').slice(1);
      const last = path.pop()!;
      let at: Record<string, unknown> = f as unknown as Record<string, unknown>;
      for (const p of path) at = at[p] as Record<string, unknown>;
      if (op.op === 'test' && at[last] !== op.value) throw Object.assign(new Error(`the test of ${op.path} failed`), { code: 422 });
      if (op.op === 'replace' || op.op === 'add') at[last] = op.value;
      if (op.op === 'remove') delete at[last];
    }
  }

  async deleteFront(front: string): Promise<void> {
    if (this.fronts.delete(front)) this.writes.push(`delete ${front}`);
  }

  async putFront(front: string, object: object): Promise<void> {
    this.writes.push(`put ${front}`);
    this.fronts.set(front, { ...(clone(object) as LiveFrontObject), kind: front.slice(0, front.indexOf('/')) as LiveFrontObject['kind'] });
  }

  async endpoints(_service: ServiceRef, _port: number): Promise<Endpoint[]> {
    return [...this.endpointList];
  }

  async namespaces(): Promise<NamespaceInfo[]> {
    return [...this.namespaceList];
  }

  async send(request: ProbeRequest): Promise<void> {
    this.sent.push(request);
    if (this.probeError) throw new Error(this.probeError);
  }
}
