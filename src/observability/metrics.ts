// Prometheus metrics (design.md §3): certificate expiry per node and
// service, rotations and node steps by result, durations; plus the
// controller-runtime style runtime metrics (work queue, reconciles, watch
// errors, leadership) that tell an operator whether the controller itself is
// healthy. Defined here once; controller and agent record into them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { WorkQueue, WorkQueueHooks } from '../kube/workqueue.js';

/** Where a certificate was read: `path` (a file on the node), `endpoint` (address:port it is served on) or `secret` (namespace/name); the others are absent. */
export type CertificateLabel = 'node' | 'service' | 'path' | 'endpoint' | 'secret';

export interface CertrotatorMetrics {
  registry: Registry;
  /** Unix seconds of a certificate's notAfter; alert on `… - time() < 30*86400`. */
  certificateNotAfter: Gauge<CertificateLabel>;
  /** 1 for a certificate past its notAfter (agent inventory), per node, service and file path or served endpoint. */
  certificateExpired: Gauge<CertificateLabel>;
  /** Certificate files the agent inventory could not read or parse. */
  certificateReadErrorsTotal: Counter<CertificateLabel>;
  /**
   * 1 when an endpoint serves a certificate that is none of its service's files
   * on disk: the component was not restarted since the file changed (agent inventory).
   */
  certificateServedStale: Gauge<'node' | 'service' | 'endpoint'>;
  /** 1 while a CertificateRotationPolicy is Stalled, with the reason (it cannot renew without a person); no series otherwise. */
  policyStalled: Gauge<'policy' | 'reason'>;
  /** Finished CertificateRotation runs by result (succeeded, failed, rolled_back, cancelled). */
  rotationsTotal: Counter<'result'>;
  /** Wall time of a whole run, start to Ready/Stalled. */
  rotationDuration: Histogram<'result'>;
  /** Node steps (backup, renew, restart, verify, rollback…) by result. */
  nodeStepsTotal: Counter<'step' | 'result'>;
  nodeStepDuration: Histogram<'step' | 'result'>;
  /** Reconciles by controller and outcome (success, error, requeue). */
  reconcileTotal: Counter<'controller' | 'result'>;
  reconcileDuration: Histogram<'controller'>;
  workqueueDepth: Gauge<'name'>;
  workqueueAddsTotal: Counter<'name'>;
  workqueueRetriesTotal: Counter<'name'>;
  /** List/watch failures per informer (each one is followed by a restart). */
  watchErrorsTotal: Counter<'resource'>;
  /** 1 while this replica holds the Lease. */
  leader: Gauge<'lease'>;
  /** Reports `queue.len()` as workqueue_depth{name=queue.name} at every scrape. */
  observeQueueDepth(queue: Pick<WorkQueue, 'name' | 'len'>): void;
}

export interface MetricsOptions {
  registry?: Registry;
  /** process_* and nodejs_* metrics (open fds, heap, event-loop lag). Default true. */
  defaultMetrics?: boolean;
  prefix?: string;
}

export function createMetrics(opts: MetricsOptions = {}): CertrotatorMetrics {
  const registry = opts.registry ?? new Registry();
  const p = opts.prefix ?? 'certrotator_';
  const registers = [registry];
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  // Depth is sampled at scrape time (prom-client calls collect), so it is exact and costs nothing between scrapes.
  const queues = new Map<string, Pick<WorkQueue, 'name' | 'len'>>();
  return {
    observeQueueDepth: (queue) => void queues.set(queue.name, queue),
    registry,
    // The controller sets it per node and service (the earliest a rotation reported, no path);
    // each agent per file (path) from its inventory: the same name from every source.
    certificateNotAfter: new Gauge({
      name: `${p}certificate_not_after_timestamp_seconds`,
      help: 'notAfter of a component certificate, as Unix seconds, per node, service and (agent inventory) file path or served endpoint',
      labelNames: ['node', 'service', 'path', 'endpoint', 'secret'],
      registers,
    }),
    certificateExpired: new Gauge({
      name: `${p}certificate_expired`,
      help: '1 when a component certificate (file or served) is past its notAfter (agent inventory)',
      labelNames: ['node', 'service', 'path', 'endpoint', 'secret'],
      registers,
    }),
    certificateReadErrorsTotal: new Counter({
      name: `${p}certificate_read_errors_total`,
      help: 'Certificate files or endpoints the agent inventory could not read or parse',
      labelNames: ['node', 'service', 'path', 'endpoint', 'secret'],
      registers,
    }),
    certificateServedStale: new Gauge({
      name: `${p}certificate_served_stale`,
      help: "1 when an endpoint serves a certificate that is none of its service's files on disk (the component was not restarted since the file changed)",
      labelNames: ['node', 'service', 'endpoint'],
      registers,
    }),
    policyStalled: new Gauge({
      name: `${p}policy_stalled`,
      help: '1 while a CertificateRotationPolicy is Stalled, by reason: it will not renew until a person acts (its Ready message says what)',
      labelNames: ['policy', 'reason'],
      registers,
    }),
    rotationsTotal: new Counter({ name: `${p}rotations_total`, help: 'Finished rotation runs by result', labelNames: ['result'], registers }),
    rotationDuration: new Histogram({
      name: `${p}rotation_duration_seconds`,
      help: 'Duration of a rotation run from start to its final condition',
      labelNames: ['result'],
      // A run spans seconds (single worker service) to hours (500 nodes, slow restarts).
      buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400],
      registers,
    }),
    nodeStepsTotal: new Counter({ name: `${p}node_steps_total`, help: 'Node steps by step and result', labelNames: ['step', 'result'], registers }),
    nodeStepDuration: new Histogram({
      name: `${p}node_step_duration_seconds`,
      help: 'Duration of one node step',
      labelNames: ['step', 'result'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    }),
    reconcileTotal: new Counter({ name: `${p}reconcile_total`, help: 'Reconciles by controller and result', labelNames: ['controller', 'result'], registers }),
    reconcileDuration: new Histogram({
      name: `${p}reconcile_duration_seconds`,
      help: 'Duration of one reconcile',
      labelNames: ['controller'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    workqueueDepth: new Gauge({
      name: `${p}workqueue_depth`,
      help: 'Keys ready to be processed',
      labelNames: ['name'],
      registers,
      collect() {
        for (const [name, q] of queues) this.set({ name }, q.len());
      },
    }),
    workqueueAddsTotal: new Counter({ name: `${p}workqueue_adds_total`, help: 'Keys added to the work queue', labelNames: ['name'], registers }),
    workqueueRetriesTotal: new Counter({ name: `${p}workqueue_retries_total`, help: 'Rate-limited re-adds', labelNames: ['name'], registers }),
    watchErrorsTotal: new Counter({ name: `${p}watch_errors_total`, help: 'List/watch errors per informer', labelNames: ['resource'], registers }),
    leader: new Gauge({ name: `${p}leader`, help: '1 while this replica holds the leader Lease', labelNames: ['lease'], registers }),
  };
}

/** Hooks that record a work queue's adds, retries and reconciles (pass to `new WorkQueue({ hooks })`). */
export function workQueueHooks(m: CertrotatorMetrics, queueName: string): WorkQueueHooks {
  return {
    onAdd: () => m.workqueueAddsTotal.inc({ name: queueName }),
    onRetry: () => m.workqueueRetriesTotal.inc({ name: queueName }),
    onReconcile: (_key, outcome, ms) => {
      m.reconcileTotal.inc({ controller: queueName, result: outcome });
      m.reconcileDuration.observe({ controller: queueName }, ms / 1000);
    },
  };
}

/**
 * The per-node certificate series, with the nodes they were set for, so that a
 * node that leaves the cluster takes its series with it: a gauge left behind
 * would keep answering an expiry alert for a machine that no longer exists.
 */
export class NodeCertificateSeries {
  private readonly services = new Map<string, Set<string>>();

  constructor(private readonly gauge: Gauge<'node' | 'service'>) {}

  set(node: string, service: string, unixSeconds: number): void {
    this.gauge.set({ node, service }, unixSeconds);
    let set = this.services.get(node);
    if (!set) this.services.set(node, (set = new Set()));
    set.add(service);
  }

  /** Removes every series of a node not in `present`; returns the nodes removed. */
  keepOnly(present: ReadonlySet<string>): string[] {
    const gone = [...this.services.keys()].filter((n) => !present.has(n));
    for (const node of gone) {
      for (const service of this.services.get(node)!) this.gauge.remove({ node, service });
      this.services.delete(node);
    }
    return gone;
  }
}
