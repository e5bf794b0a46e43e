// What a reconcile of a CertificateRotation may touch, as narrow interfaces:
// reads come from the informer caches (never the API server directly, except
// to refresh after a conflict), writes go through `ControllerWriter`, whose
// every method is one API request. The process wires the real ones (run.ts,
// kube-adapter.ts); unit tests pass the in-memory fake (fake-cluster.ts).
import type { V1Node } from '@kubernetes/client-node';
import type { CertificateRotation, CertificateRotationStatus } from '../api/certificaterotation.js';
import type { NodeRotation, SealedBundle } from '../api/noderotation.js';
import type { NodeEvent } from './cascade.js';
import type { CreatePipeline } from './create-pipeline.js';
import type { RkeClusterAccess } from './rke-run.js';
import type { RunIndex } from './run-index.js';
import type { SecretTargetSource } from './secrets/cluster-read.js';
import type { SecretRunCluster } from './secrets/target-steps.js';

/** The cache view: what the informers hold, plus our own writes they have not delivered yet. */
export interface ClusterReader {
  rotation(name: string): CertificateRotation | undefined;
  rotations(): readonly CertificateRotation[];
  /** Every NodeRotation of this rotation (all generations). */
  nodeRotationsOf(rotation: string): readonly NodeRotation[];
  /** One NodeRotation by name (one lookup, not a scan). */
  nodeRotation(name: string): NodeRotation | undefined;
  /**
   * Every Node, as the planner sees them. The array is never changed after it
   * is handed out, and the same array comes back while the Nodes stay the
   * same (the informer's list is memoised), so a kept run compares by reference.
   */
  nodes(): readonly V1Node[];
  /** Whether the Node is in the cache (one lookup, not a scan of every Node). */
  nodeExists(name: string): boolean;
}

/** One API write per call. Fenced writes throw ConflictError (src/kube/client.ts) on a stale resourceVersion. */
export interface ControllerWriter {
  /** Replaces status, fenced by `rotation.metadata.resourceVersion`; returns the stored object. */
  replaceStatus(rotation: CertificateRotation, status: CertificateRotationStatus): Promise<CertificateRotation>;
  /** Sets metadata.finalizers, fenced by `rotation.metadata.resourceVersion`. */
  setFinalizers(rotation: CertificateRotation, finalizers: string[]): Promise<CertificateRotation>;
  /** Creates; an existing object of that name is not an error ('exists'): names are deterministic. */
  createNodeRotation(nr: NodeRotation): Promise<'created' | 'exists'>;
  /** Deletes; a missing object counts as deleted. */
  deleteNodeRotation(name: string): Promise<void>;
  /** Sets a NodeRotation's sealedBundle (RKE: its node's certificates sealed to its agent's key); null removes it. */
  setSealedBundle(name: string, sealed: SealedBundle | null): Promise<void>;
  /** A fresh read (after a conflict), bypassing the cache. */
  getRotation(name: string): Promise<CertificateRotation | undefined>;
}

export interface EventSink {
  normal(obj: CertificateRotation, reason: string, message: string): void;
  warning(obj: CertificateRotation, reason: string, message: string): void;
  /** Workers' routine starts and finishes, which the sink may gather over a few seconds (event-window.ts); absent: sent at once. */
  routine?(obj: CertificateRotation, events: readonly NodeEvent[]): void;
  /** Sends what routine() gathered for `obj` (before a run's last Event). */
  flushRoutine?(obj: CertificateRotation): void;
}

/** What the controller reports to metrics; all optional so tests need not care. */
export interface ControllerMetricsSink {
  runFinished?(result: 'succeeded' | 'failed', durationSeconds: number): void;
  nodeFinished?(phase: string, durationSeconds: number): void;
  /** Earliest new notAfter a node reported for a service (Unix seconds). */
  certificateNotAfter?(node: string, service: string, unixSeconds: number): void;
}

export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ControllerDeps {
  read: ClusterReader;
  write: ControllerWriter;
  events: EventSink;
  now: () => Date;
  log: Logger;
  metrics?: ControllerMetricsSink;
  /**
   * When set, the NodeRotation creates that follow a status write run in the
   * background (create-pipeline.ts) and the pass returns after the write;
   * without it a pass awaits its creates.
   */
  creates?: CreatePipeline;
  /**
   * RKE runs: the cluster state and the per-run bundle Secret (rke-run.ts).
   * Without it an RKE run signs on each host, as the offline CLI does.
   */
  rke?: RkeClusterAccess;
  /** scope Secrets: where discovery reads webhook configurations, Services, Pods and Secrets (secrets/cluster-read.ts). */
  secretTargets?: SecretTargetSource;
  /** scope Secrets, Apply: what the run writes (secrets/cluster-write.ts). */
  secretRun?: SecretRunCluster;
  /** Runs kept between passes (run-index.ts); without it every pass rebuilds its run. */
  runs?: RunIndex;
}
