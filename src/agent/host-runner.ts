// Runs one NodeRotation's instruction on this node's host with the catalog's
// host steps (src/host). The journal there is keyed by the instruction's runID,
// so an agent killed at any point and started again continues the same run —
// or, when the run already finished, only reads its result — instead of
// rotating the node a second time.
import type { NodeRotationSpec } from '../api/noderotation.js';
import { catalogFor } from '../distributions/index.js';
import { NodeRotationError, openHost, runNodeRotation, type NodeRotationResult, type ProgressEvent } from '../host/rotation.js';
import type { RestartExecutor } from '../host/restart.js';
import { parseDuration } from '../api/duration.js';
import { hostScope } from './report.js';
import { posix } from 'node:path';
import type { DistributionCatalog } from '../distributions/types.js';
import { fillPath } from '../distributions/index.js';
import type { ProvidedMaterial } from '../host/prepare.js';
import { inspectNode, type CertificateReport } from '../host/inspect.js';
import type { NodeRole } from '../distributions/types.js';

/** Certificate pairs by RKE bundle entry name (`kube-node`, `kube-etcd-10-0-0-1`). */
export type BundlePairs = ReadonlyMap<string, { certPem: string; keyPem: string }>;

/**
 * The controller-issued RKE pairs as the host steps take them: entry names are
 * the file names under /etc/kubernetes/ssl without `.pem`, mapped to the cert
 * paths the plan uses.
 */
export function providedFromBundle(catalog: DistributionCatalog, dataDir: string, pairs: BundlePairs): ProvidedMaterial {
  const dir = posix.dirname(fillPath(catalog.cas[0]!.files.cert, { dataDir }));
  const out = new Map<string, { certPem: string; keyPem: string }>();
  for (const [name, pair] of pairs) {
    if (name.includes('/') || name.startsWith('.')) throw new Error(`bundle entry ${name}: not a file name`);
    out.set(posix.join(dir, `${name}.pem`), pair);
  }
  return out;
}

export interface HostRunner {
  /**
   * `bundle` (RKE runs whose spec names a bundle): fetches the pairs the
   * controller issued for this node; called only when a new run is prepared.
   */
  run(spec: NodeRotationSpec, onProgress: (e: ProgressEvent) => void, bundle?: () => Promise<BundlePairs>): Promise<NodeRotationResult>;
  /** spec.action Check: the certificates of spec.services on this node as they are; reads only. */
  check(spec: NodeRotationSpec): Promise<CertificateReport[]>;
}

export interface CatalogHostRunnerOptions {
  /** Where the node's filesystem is mounted (`/` on the node itself, `/host` in the DaemonSet). */
  hostRoot: string;
  /** The distribution's data dir relative to the host root; the catalog's default when absent. */
  dataDir?: string;
  /** The node's IP, where components bound to it answer (probes and served-certificate checks). */
  nodeIP: string;
  /** Where the node's 127.0.0.1 listeners are reached; 127.0.0.1 when absent (hostNetwork). */
  loopbackAddress?: string;
  executor: RestartExecutor;
}

export class CatalogHostRunner implements HostRunner {
  constructor(private readonly o: CatalogHostRunnerOptions) {}

  async check(spec: NodeRotationSpec): Promise<CertificateReport[]> {
    const catalog = catalogFor(spec.distribution);
    const dataDir = this.o.dataDir ?? catalog.defaultDataDir;
    const reports = await inspectNode(catalog, openHost(catalog, this.o.hostRoot, dataDir), spec.role.split(',') as NodeRole[], dataDir);
    // The CA files are reported by `node check` too, but they are not what a rotation renews;
    // the files only a rotation of every service renews ("all") are, with scope All.
    return reports.filter((r) => spec.services.includes(r.service) || (r.service === 'all' && spec.scope === 'All'));
  }

  run(spec: NodeRotationSpec, onProgress: (e: ProgressEvent) => void, bundle?: () => Promise<BundlePairs>): Promise<NodeRotationResult> {
    const catalog = catalogFor(spec.distribution);
    const dataDir = this.o.dataDir ?? catalog.defaultDataDir;
    // Fetched only when a new run is prepared; a resumed run has it staged already.
    const provided = spec.bundleSecretRef
      ? async (): Promise<ProvidedMaterial> => {
          if (spec.distribution !== 'rke') throw new NodeRotationError('prepare', `spec.bundleSecretRef is for RKE only, not ${spec.distribution}`, false);
          if (!bundle) throw new NodeRotationError('prepare', 'this agent has no way to receive the controller-issued certificates', false);
          return providedFromBundle(catalog, dataDir, await bundle());
        }
      : undefined;
    return runNodeRotation({
      ...(provided ? { provided } : {}),
      catalog,
      host: openHost(catalog, this.o.hostRoot, dataDir),
      scope: hostScope(spec),
      roles: spec.role.split(',') as ('etcd' | 'controlplane' | 'worker')[],
      dataDir,
      nodeIP: this.o.nodeIP,
      loopbackAddress: this.o.loopbackAddress,
      restart: spec.restart,
      executor: this.o.executor,
      runId: spec.runID,
      // Halt means "stop and touch nothing": the failed node is left as it is for a person.
      rollbackOnFailure: spec.onFailure === 'Rollback',
      // The whole node step, a rollback included, must fit in spec.timeout,
      // counted from now: verification ends by 70% of it, leaving the rest to
      // restore the backup and restart (about 25 s for a real RKE2 server).
      verifyBy: new Date(Date.now() + Math.max(5_000, Math.floor(parseDuration(spec.timeout) * 0.7))),
      onProgress,
    });
  }
}
