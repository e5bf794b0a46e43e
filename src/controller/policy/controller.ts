// The CertificateRotationPolicy controller, in the controller process beside
// the rotation controller: its own informers (policies, inventories), its own
// work queue keyed by policy name, the rotation and Node caches shared. Event
// handlers only enqueue: a policy changed → it; an inventory or a rotation
// changed → every policy (a cluster has a handful; each pass reads caches).
// Only the leader runs the queue, as for rotations.
import type { V1Node } from '@kubernetes/client-node';
import type { CertificateInventory } from '../../api/certificateinventory.js';
import type { CertificateRotation, CertificateRotationInput } from '../../api/certificaterotation.js';
import type { CertificateRotationPolicy, CertificateRotationPolicyStatus } from '../../api/certificaterotationpolicy.js';
import { LABELS } from '../../api/constants.js';
import { labelValue } from '../../api/names.js';
import { describeError, isConflict, isNotFound, type ClusterCustomResource, type CustomObject, type KubeClients } from '../../kube/client.js';
import type { EventRecorder } from '../../kube/events.js';
import { customResourceInformer, type Informer } from '../../kube/informer.js';
import { WorkQueue } from '../../kube/workqueue.js';
import { reconcileLogger, type Logger, type ReconcileLog } from '../../observability/logger.js';
import { workQueueHooks, type CertrotatorMetrics } from '../../observability/metrics.js';
import type { WriteCounter } from '../kube-adapter.js';
import { reconcilePolicy, type PolicyDeps } from './reconcile-policy.js';
import { rotatedNodes } from '../run-state.js';
import type { NodeRotation } from '../../api/noderotation.js';

export const POLICY_CONTROLLER_NAME = 'certificaterotationpolicy';

type Policy = CertificateRotationPolicy & CustomObject;
type Inventory = CertificateInventory & CustomObject;
type Rotation = CertificateRotation & CustomObject;

export interface PolicyControllerOptions {
  clients: KubeClients;
  rotations: Informer<Rotation>;
  nodes: Informer<V1Node>;
  /** A rotation's NodeRotations (the rotation controller's cache): when each node it rotated finished. */
  nodeRotationsOf: (rotation: string) => readonly NodeRotation[];
  recorder: EventRecorder;
  metrics: CertrotatorMetrics;
  countWrite: WriteCounter;
  log: Logger;
  onWatchError: (resource: string) => () => void;
  now?: () => Date;
}

/**
 * What a policy decides from, and no more: one inventory per node is cached, so
 * at 5,000 nodes the lists a person reads (unreadable reasons, stale
 * endpoints, up to 16 each) would be most of the memory.
 */
export function policyView(inv: Inventory): Inventory {
  const s = inv.status;
  return {
    apiVersion: inv.apiVersion,
    kind: inv.kind,
    metadata: { name: inv.metadata?.name, resourceVersion: inv.metadata?.resourceVersion },
    ...(s ? { status: { ...s, staleEndpoints: [], unreadable: [] } } : {}),
  } as Inventory;
}

export class PolicyController {
  readonly policies: Informer<Policy>;
  readonly inventories: Informer<Inventory>;
  private queue: WorkQueue | undefined;
  private running: Promise<void> | undefined;
  private readonly policyClient: ClusterCustomResource<Policy>;
  /** The reason each stalled policy's series carries, so a change of reason replaces it. */
  private readonly stalledReasons = new Map<string, string>();
  private readonly rotationClient: ClusterCustomResource<Rotation>;

  constructor(private readonly o: PolicyControllerOptions) {
    const log = o.log;
    this.policyClient = o.clients.certificateRotationPolicies as unknown as ClusterCustomResource<Policy>;
    this.rotationClient = o.clients.certificateRotations as unknown as ClusterCustomResource<Rotation>;
    this.policies = customResourceInformer(o.clients.kc, this.policyClient, { logger: log, onError: o.onWatchError('certificaterotationpolicies') });
    this.inventories = customResourceInformer(o.clients.kc, o.clients.certificateInventories as unknown as ClusterCustomResource<Inventory>, {
      logger: log,
      onError: o.onWatchError('certificateinventories'),
      transform: policyView,
    });
    const sink = { add: (key: string) => this.queue?.add(key) };
    const everyPolicy = () => this.policies.keys();
    this.policies.enqueueTo(sink);
    this.inventories.enqueueTo(sink, everyPolicy);
    o.rotations.enqueueTo(sink, everyPolicy);
  }

  informers(): Informer<CustomObject>[] {
    return [this.policies, this.inventories] as unknown as Informer<CustomObject>[];
  }

  start(): void {
    this.policies.start();
    this.inventories.start();
  }

  async waitForSync(timeoutMs?: number): Promise<void> {
    await Promise.all([this.policies.waitForSync(timeoutMs), this.inventories.waitForSync(timeoutMs)]);
  }

  /** Leading: reconcile every policy, then whatever the handlers enqueue. */
  lead(): void {
    const q = new WorkQueue({ name: POLICY_CONTROLLER_NAME, hooks: workQueueHooks(this.o.metrics, POLICY_CONTROLLER_NAME) });
    this.queue = q;
    for (const key of this.policies.keys()) q.add(key);
    this.running = q.run(1, (key) => this.reconcile(key));
  }

  async stopLeading(): Promise<void> {
    const q = this.queue;
    this.queue = undefined;
    if (q) await q.shutDown();
    await this.running;
  }

  stop(): void {
    this.policies.stop();
    this.inventories.stop();
  }

  private deps(log: ReconcileLog): PolicyDeps {
    const o = this.o;
    return {
      policy: (name) => this.policies.get(name),
      inventories: () => this.inventories.list(),
      nodeLabels: () => new Map(o.nodes.list().map((n) => [n.metadata?.name ?? '', n.metadata?.labels])),
      rotations: () => o.rotations.list(),
      rotatedNodes: (rotation) => rotatedNodes(rotation, o.nodeRotationsOf(rotation.metadata.name!)),
      listOwnedFresh: async (policy) => (await this.rotationClient.list(`${LABELS.policy}=${labelValue(policy)}`)).items,
      createRotation: async (rotation: CertificateRotationInput) => {
        o.countWrite('create', 'certificaterotations');
        await this.rotationClient.create(rotation as unknown as Rotation);
      },
      patchRotation: async (name, patch) => {
        o.countWrite('patch', 'certificaterotations');
        await this.rotationClient.mergePatch(name, patch);
      },
      deleteRotation: async (name) => {
        o.countWrite('delete', 'certificaterotations');
        await this.rotationClient.delete(name);
      },
      writeStatus: async (policy, status: CertificateRotationPolicyStatus) => {
        o.countWrite('update', 'certificaterotationpolicies/status');
        await this.policyClient.replaceStatus(policy as Policy, status);
      },
      event: (policy, type, reason, message) => (type === 'Normal' ? o.recorder.normal(policy, reason, message) : o.recorder.warning(policy, reason, message)),
      now: o.now ?? (() => new Date()),
      log,
      stalled: (policy, reason) => {
        const before = this.stalledReasons.get(policy);
        if (before === reason) return;
        if (before !== undefined) o.metrics.policyStalled.remove({ policy, reason: before });
        if (reason === undefined) this.stalledReasons.delete(policy);
        else {
          this.stalledReasons.set(policy, reason);
          o.metrics.policyStalled.set({ policy, reason }, 1);
        }
      },
    };
  }

  private async reconcile(key: string) {
    const log = reconcileLogger(this.o.log, POLICY_CONTROLLER_NAME, key);
    try {
      const result = await reconcilePolicy(this.deps(log), key);
      log.debug({ resourceVersion: this.policies.get(key)?.metadata?.resourceVersion }, 'reconciled');
      return result;
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) {
        log.debug({ err: describeError(err) }, 'the policy or a rotation changed under this pass; deciding again');
        return { requeueAfterMs: 100 };
      }
      log.error({ err: describeError(err) }, 'reconcile failed; will retry with backoff');
      throw err;
    }
  }
}
