// The agent process's wiring: an informer over this node's NodeRotations that
// only enqueues names, a work queue that runs one at a time (a node is rotated
// by one instruction at a time), and the reconcile function.
import type { KubeAccess } from '../kube/kubeconfig.js';
import type { Logger } from 'pino';
import { FINISHED_NODE_PHASES, LABELS } from '../api/constants.js';
import { labelValue } from '../api/names.js';
import type { CertificateRotation } from '../api/certificaterotation.js';
import type { NodeRotation, NodeRotationStatus } from '../api/noderotation.js';
import { makeClients, type ClusterCustomResource } from '../kube/client.js';
import { customResourceInformer, objectKey, type Informer } from '../kube/informer.js';
import { WorkQueue } from '../kube/workqueue.js';
import { workQueueHooks, type CertrotatorMetrics } from '../observability/metrics.js';
import type { HostRunner } from './host-runner.js';
import { reconcileNodeRotation } from './reconcile.js';
import { SealingKeys } from './sealing-keys.js';

export interface NodeAgentOptions {
  kc: KubeAccess;
  nodeName: string;
  agentName: string;
  runner: HostRunner;
  log: Logger;
  /** Reconciles and their outcomes (certrotator_reconcile_total{controller="agent"}), as the controller counts its own. */
  metrics?: CertrotatorMetrics;
  /** Called when this agent reported a node finished (Rotated, RolledBack, Failed, Checked): the host's certificates may have changed. */
  onFinished?: () => void;
}

export class NodeAgent {
  readonly informer: Informer<NodeRotation>;
  private readonly queue: WorkQueue;
  private readonly nodeRotations: ClusterCustomResource<NodeRotation>;
  private readonly rotations: ClusterCustomResource<CertificateRotation>;
  private running?: Promise<void>;
  private readonly sealingKeys = new SealingKeys();

  constructor(private readonly o: NodeAgentOptions) {
    const clients = makeClients(o.kc);
    this.nodeRotations = clients.nodeRotations as unknown as ClusterCustomResource<NodeRotation>;
    this.rotations = clients.certificateRotations as unknown as ClusterCustomResource<CertificateRotation>;
    // A failed attempt (a 403, an API error, a journal that cannot be read) is
    // retried with backoff; each one is said, with the NodeRotation's name.
    this.queue = new WorkQueue({
      name: 'agent',
      hooks: {
        ...(o.metrics ? workQueueHooks(o.metrics, 'agent') : {}),
        onError: (key, err, retries) => o.log.error({ noderotation: key, retries, err: err instanceof Error ? err.message : String(err) }, 'reconcile failed; retrying with backoff'),
      },
    });
    this.informer = customResourceInformer(o.kc, this.nodeRotations, {
      name: 'noderotations',
      labelSelector: `${LABELS.node}=${labelValue(o.nodeName)}`,
      logger: o.log,
    }).enqueueTo(this.queue, objectKey);
  }

  async start(cacheSyncTimeoutMs?: number): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync(cacheSyncTimeoutMs);
    this.o.log.info({ node: this.o.nodeName }, 'watching this node\'s NodeRotations');
    this.running = this.queue.run(1, async (key) => {
      const log = this.o.log.child({ noderotation: key });
      // The version this pass decided from: "the agent had its chance at this
      // state", which tests wait on before asserting that nothing was done.
      const resourceVersion = this.informer.get(key)?.metadata?.resourceVersion;
      const result = await reconcileNodeRotation(
        {
          nodeName: this.o.nodeName,
          agentName: this.o.agentName,
          get: (name) => this.informer.get(name),
          getFresh: (name) => this.nodeRotations.tryGet(name),
          getRotation: (name) => this.rotations.tryGet(name),
          patchStatus: async (name, status: Partial<NodeRotationStatus>) => {
            await this.nodeRotations.mergePatchStatus(name, { status });
            if (status.phase && FINISHED_NODE_PHASES.includes(status.phase)) this.o.onFinished?.();
          },
          runner: this.o.runner,
          sealingKeys: this.sealingKeys,
          now: () => new Date(),
          log,
        },
        key,
      );
      log.debug({ resourceVersion }, 'reconciled');
      return result;
    });
  }

  /** Stops taking new work and waits for the instruction in hand to finish its current call. */
  async stop(): Promise<void> {
    this.informer.stop();
    await this.queue.shutDown();
    await this.running;
  }
}
