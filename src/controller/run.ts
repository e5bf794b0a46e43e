// The controller process: informers on CertificateRotation, NodeRotation and
// Node; one keyed work queue (and the policy controller's, policy/); leader election on a Lease; /metrics, /healthz,
// /readyz; graceful SIGTERM.
//
// Only the leader reconciles. A standby runs its informers too (warm caches:
// when it takes over it can act at once) but enqueues nothing. The queue runs
// ONE worker: rotations are serialised cluster-wide anyway (one at a time),
// and a single worker is what makes the one-at-a-time gate race-free without
// a lock object.
import type { V1Node } from '@kubernetes/client-node';
import { Counter } from 'prom-client';
import type { CertificateRotation } from '../api/certificaterotation.js';
import type { NodeRotation } from '../api/noderotation.js';
import { kubeRkeAccess } from './rke-kube.js';
import { describeError, isConflict, loadKubeConfig, makeClients, secretReader, type ClusterCustomResource, type CustomObject } from '../kube/client.js';
import { EventRecorder, eventClientFor, type EventClient } from '../kube/events.js';
import { customResourceInformer, nodeInformer, type Informer } from '../kube/informer.js';
import { LeaderElector } from '../kube/leader-election.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import { createLogger, reconcileLogger, type Logger } from '../observability/logger.js';
import { createMetrics, NodeCertificateSeries, workQueueHooks, type CertrotatorMetrics } from '../observability/metrics.js';
import { startObservabilityServer, type ObservabilityServer } from '../observability/server.js';
import type { ControllerDeps, ControllerMetricsSink } from './deps.js';
import { reuseConnections } from './connection-reuse.js';
import { cacheView } from './node-rotation.js';
import { CreatePipeline } from './create-pipeline.js';
import { KubeReader, KubeWriter, type WriteCounter } from './kube-adapter.js';
import { ApiSecretTargetSource } from './secrets/cluster-read.js';
import { ApiSecretRunCluster } from './secrets/cluster-write.js';
import { EventWindow } from './event-window.js';
import { reconcileRotation } from './reconcile-rotation.js';
import { RunIndex } from './run-index.js';
import { STATUS_HOLD_MS } from './status-hold.js';
import { detectDistribution, plannerView } from './detect.js';
import { PolicyController } from './policy/controller.js';
import { SecretInventory } from './secret-inventory.js';
import { runActive, settled } from './run-state.js';

export const CONTROLLER_NAME = 'certificaterotation';
export const COMPONENT = 'certrotator-controller';

export interface ControllerOptions {
  kubeconfig?: string;
  /** `host:port`; port 0 picks a free one (logged); undefined disables the server. */
  metricsAddr?: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity?: string;
  logLevel?: string;
  /** How long the leader waits for its caches before it gives up the Lease and exits 1 (default 60 s). */
  cacheSyncTimeoutMs?: number;
  /** Lease timing (LeaderElector's defaults when absent: 15 s, 10 s, 2 s). */
  election?: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  /** How often the leader reads the distribution's certificate Secrets (default 6 h; 0: never). */
  inventoryIntervalMs?: number;
  /** Aborting it stops the controller gracefully (SIGTERM does this in the CLI). */
  signal: AbortSignal;
  logger?: Logger;
}

type Rot = CertificateRotation & CustomObject;
type NR = NodeRotation & CustomObject;

function metricsSink(m: CertrotatorMetrics, series: NodeCertificateSeries): ControllerMetricsSink {
  return {
    runFinished: (result, seconds) => {
      m.rotationsTotal.inc({ result });
      m.rotationDuration.observe({ result }, seconds);
    },
    nodeFinished: (phase, seconds) => {
      m.nodeStepsTotal.inc({ step: 'node', result: phase.toLowerCase() });
      m.nodeStepDuration.observe({ step: 'node', result: phase.toLowerCase() }, seconds);
    },
    certificateNotAfter: (node, service, t) => series.set(node, service, t),
  };
}

function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i) : '0.0.0.0';
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics-addr ${addr}: expected host:port`);
  return { host, port };
}

/** Runs until `signal` aborts (exit code 0) or leadership is lost (exit code 1: client-go's convention, the pod restarts). */
export async function runController(opts: ControllerOptions): Promise<number> {
  const log = opts.logger ?? createLogger({ name: COMPONENT, level: opts.logLevel });
  // client-node is imported only if something needs it (kubeconfig.ts); if so, with one connection pool per identity.
  const kc = loadKubeConfig({ kubeconfig: opts.kubeconfig }).onClientNode(reuseConnections);
  const clients = makeClients(kc);
  const metrics = createMetrics();
  const apiWrites = new Counter({
    name: 'certrotator_controller_api_writes_total',
    help: 'API write requests the controller sent, by verb and resource (Events included)',
    labelNames: ['verb', 'resource'],
    registers: [metrics.registry],
  });
  const countWrite: WriteCounter = (verb, resource) => apiWrites.inc({ verb, resource });

  let queue: WorkQueue | undefined;
  const enqueue = { add: (key: string) => queue?.add(key) };
  const onError = (resource: string) => () => metrics.watchErrorsTotal.inc({ resource });
  const rotationsClient = clients.certificateRotations as unknown as ClusterCustomResource<Rot>;
  const nodeRotationsClient = clients.nodeRotations as unknown as ClusterCustomResource<NR>;
  const rotations: Informer<Rot> = customResourceInformer(kc, rotationsClient, { logger: log, onError: onError('certificaterotations') });
  // NodeRotations as the controller reads them (node-rotation.ts cacheView): a report's per-file detail stays in the API.
  const nodeRotations: Informer<NR> = customResourceInformer(kc, nodeRotationsClient, { logger: log, onError: onError('noderotations'), transform: (nr) => cacheView(nr) as NR });
  const nodes: Informer<V1Node> = nodeInformer(kc, { logger: log, onError: onError('nodes'), transform: plannerView });
  // Series of nodes that left the cluster are removed each minute (level-based, from the Node cache).
  const certificateSeries = new NodeCertificateSeries(metrics.certificateNotAfter);
  const sweep = setInterval(() => {
    if (!nodes.hasSynced()) return;
    const gone = certificateSeries.keepOnly(new Set(nodes.list().map((n) => n.metadata?.name ?? '')));
    if (gone.length) log.info({ nodes: gone }, 'removed the certificate series of nodes that left the cluster');
  }, 60_000);
  sweep.unref();

  // The distribution's certificate Secrets, read by the leader (secret-inventory.ts).
  const secrets = new SecretInventory({
    readSecret: secretReader(kc),
    distribution: () => {
      const d = detectDistribution(nodes.list());
      return d.ok ? d.distribution : undefined;
    },
    metrics,
    log,
  });
  const inventoryMs = opts.inventoryIntervalMs ?? 6 * 3600_000;

  // Handlers only map an object to the rotation keys it concerns.
  const queued = (): string[] =>
    rotations.list().filter((o) => o.status?.conditions?.some((c) => c.type === 'Reconciling' && c.reason === 'Queued')).map((o) => o.metadata!.name!);
  // A rotation that ends or goes away frees the slot: wake the ones queued behind it.
  rotations.enqueueTo(enqueue, (r) => [r.metadata!.name!, ...queued()]);
  // So does the last report of a node whose run already ended (timed out): see queue-gate.ts.
  nodeRotations.enqueueTo(enqueue, (nr) => [nr.spec?.rotation, ...queued()].filter((k): k is string => !!k));
  // Nodes matter only before a run starts (a running run's plan is frozen).
  nodes.enqueueTo(enqueue, () => rotations.list().filter((r) => !runActive(r.status) && !settled(r)).map((r) => r.metadata!.name!));

  const reader = new KubeReader({ rotations, nodeRotations, nodes });
  const writer = new KubeWriter(rotationsClient, nodeRotationsClient, reader, countWrite);
  const events = eventClientFor(kc);
  const countingEvents: EventClient = {
    createNamespacedEvent: (p) => (countWrite('create', 'events'), events.createNamespacedEvent(p)),
    patchNamespacedEvent: (p, o) => (countWrite('patch', 'events'), events.patchNamespacedEvent(p, o)),
  };
  const recorder = new EventRecorder({ client: countingEvents, component: COMPONENT, logger: log });
  // Workers' routine starts and finishes: one Event per kind every 5 s, not one per node (event-window.ts).
  const routineEvents = new EventWindow({ normal: (o, r, m) => recorder.normal(o, r, m), warning: (o, r, m) => recorder.warning(o, r, m) });
  // CertificateRotationPolicies: a second controller with its own queue (policy/controller.ts).
  const policies = new PolicyController({ clients, rotations, nodes, nodeRotationsOf: (r) => reader.nodeRotationsOf(r), recorder, metrics, countWrite, log, onWatchError: onError });
  // NodeRotation creates run behind the pass that recorded their intent (create-pipeline.ts).
  const creates = new CreatePipeline({
    create: (nr) => writer.createNodeRotation(nr),
    exists: (name) => reader.nodeRotationExists(name),
    onError: (rotation, nodeRotation, err) => {
      log.warn({ rotation, nodeRotation, err: describeError(err) }, 'creating a NodeRotation failed; the next pass creates it');
      queue?.addRateLimited(rotation);
    },
  });
  const baseDeps: Omit<ControllerDeps, 'log'> = {
    read: reader,
    write: writer,
    events: {
      normal: (o, r, m) => recorder.normal(o, r, m),
      warning: (o, r, m) => recorder.warning(o, r, m),
      routine: (o, events) => routineEvents.add(o, events),
      flushRoutine: (o) => routineEvents.flush(o),
    },
    now: () => new Date(),
    metrics: metricsSink(metrics, certificateSeries),
    creates,
    // RKE runs: certificates issued once per run into a bundle Secret in the controller's namespace.
    rke: kubeRkeAccess(clients.core, opts.leaseNamespace, countWrite),
    // scope Secrets: read once per plan, never cached (secrets/cluster-read.ts).
    secretTargets: new ApiSecretTargetSource(kc),
    // scope Secrets, Apply: every step reads and writes the API server directly (secrets/cluster-write.ts).
    secretRun: new ApiSecretRunCluster(kc),
    // A run kept between passes: a hand-off costs what changed, not the fleet (run-index.ts);
    // a pass that changes only bookkeeping leaves its write to a later one (status-hold.ts).
    runs: new RunIndex({ statusHoldMs: STATUS_HOLD_MS }),
  };

  const reconcile = async (key: string): Promise<ReconcileResult | void> => {
    const rlog = reconcileLogger(log, CONTROLLER_NAME, key);
    // The version this pass decided from: a debug line that says "the controller
    // had its chance at this state" (tests wait on it before asserting that
    // nothing happened; a person debugging sees every pass).
    const resourceVersion = reader.rotation(key)?.metadata?.resourceVersion;
    const began = performance.now();
    try {
      const result = await reconcileRotation({ ...baseDeps, log: rlog }, key);
      const ms = Math.round(performance.now() - began);
      rlog.debug({ resourceVersion, ms, requeueAfterMs: result ? result.requeueAfterMs : undefined }, 'reconciled');
      return result;
    } catch (err) {
      if (isConflict(err)) {
        // Lost an optimistic-concurrency race: refresh from the API server and decide again, soon.
        rlog.debug({ err: describeError(err) }, 'conflict; retrying with fresh state');
        await writer.getRotation(key).catch(() => undefined);
        return { requeueAfterMs: 10 };
      }
      rlog.error({ err: describeError(err) }, 'reconcile failed; will retry with backoff');
      throw err;
    }
  };

  let server: ObservabilityServer | undefined;
  let elector: LeaderElector | undefined;
  let lost = false;
  let workers: Promise<void> | undefined;

  // Set once the shutdown below exists: a leader that cannot start its work exits.
  let exitWith: ((code: number) => Promise<void>) | undefined;
  const lead = async (signal: AbortSignal): Promise<void> => {
    try {
      const t = opts.cacheSyncTimeoutMs;
      await Promise.all([rotations.waitForSync(t), nodeRotations.waitForSync(t), nodes.waitForSync(t), policies.waitForSync(t)]);
    } catch (err) {
      // Holding the Lease with no work queue would keep the standby from taking
      // over: give it up (the shutdown releases it) and exit non-zero.
      log.error({ err: (err as Error).message }, 'caches did not sync; giving up leadership and exiting');
      await exitWith?.(1);
      return;
    }
    if (signal.aborted) return;
    const q = new WorkQueue({ name: CONTROLLER_NAME, hooks: workQueueHooks(metrics, CONTROLLER_NAME) });
    metrics.observeQueueDepth(q);
    queue = q;
    metrics.leader.set({ lease: opts.leaseName }, 1);
    log.info({ identity: elector?.identity }, 'leading: reconciling');
    for (const key of rotations.keys()) q.add(key);
    workers = q.run(1, reconcile);
    policies.lead();
    if (inventoryMs > 0) secrets.start(inventoryMs);
    signal.addEventListener('abort', () => void stopWork(), { once: true });
  };

  const stopWork = async (): Promise<void> => {
    const q = queue;
    queue = undefined;
    metrics.leader.set({ lease: opts.leaseName }, 0);
    await secrets.stop();
    await policies.stopLeading();
    if (q) await q.shutDown(); // waits for the reconcile in flight
    await workers;
    routineEvents.close(); // what the last passes gathered, before the recorder closes
    await creates.settled(); // and for the creates it started: no write after this
  };

  rotations.start();
  nodeRotations.start();
  nodes.start();
  policies.start();
  if (opts.metricsAddr !== undefined) {
    const { host, port } = parseAddr(opts.metricsAddr);
    server = await startObservabilityServer({
      port,
      host,
      registry: metrics.registry,
      informers: [rotations, nodeRotations, nodes, ...policies.informers()],
      readiness: [{ name: 'leader-election', check: () => !lost || 'leadership lost' }],
    });
    log.info({ port: server.port, host }, 'serving /metrics, /healthz, /readyz');
  }

  const done = new Promise<number>((resolve) => {
    const shutdown = async (code: number): Promise<void> => {
      // Stop reconciling first, then give up the lease: nobody acts while a successor leads.
      await stopWork();
      clearInterval(sweep);
      if (elector) await elector.stop();
      await recorder.close();
      rotations.stop();
      nodeRotations.stop();
      nodes.stop();
      policies.stop();
      await server?.close();
      log.info({ code }, 'controller stopped');
      resolve(code);
    };
    exitWith = shutdown;
    opts.signal.addEventListener('abort', () => void shutdown(0), { once: true });
    if (opts.leaderElect) {
      elector = new LeaderElector({
        kc,
        namespace: opts.leaseNamespace,
        name: opts.leaseName,
        identity: opts.identity,
        ...opts.election,
        logger: log,
        onStartedLeading: (signal) => lead(signal),
        onStoppedLeading: (reason) => {
          if (reason === 'lost') {
            lost = true;
            log.error({}, 'leadership lost; exiting');
            void shutdown(1);
          }
        },
        onNewLeader: (leader) => log.info({ leader }, 'leader observed'),
      });
      void elector.run();
    } else {
      void lead(new AbortController().signal);
    }
  });
  return done;
}
