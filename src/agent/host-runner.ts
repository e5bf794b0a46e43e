// Runs one NodeRotation's instruction on this node's host with the catalog's
// host steps (src/host). The journal there is keyed by the instruction's runID,
// so an agent killed at any point and started again continues the same run —
// or, when the run already finished, only reads its result — instead of
// rotating the node a second time.
import type { NodeRotationSpec } from '../api/noderotation.js';
import { catalogFor } from '../distributions/index.js';
import { openHost, runNodeRotation, type NodeRotationResult, type ProgressEvent } from '../host/rotation.js';
import type { RestartExecutor } from '../host/restart.js';
import { parseDuration } from '../api/duration.js';
import { hostScope } from './report.js';
import { posix } from 'node:path';
import type { DistributionCatalog } from '../distributions/types.js';
import { fillPath } from '../distributions/index.js';
import type { ProvidedMaterial } from '../host/prepare.js';
import { BUNDLE_RUN_ANNOTATION } from '../controller/rke-bundle.js';
import { inspectNode, type CertificateReport } from '../host/inspect.js';
import type { NodeRole } from '../distributions/types.js';

/** Reads one Secret by name (get only; undefined when it does not exist): its data (base64, as in the API) and annotations. */
export type SecretReader = (ref: { namespace: string; name: string }) => Promise<{ data: Record<string, string>; annotations: Record<string, string> } | undefined>;


/**
 * The controller-issued RKE bundle as the host steps take it: Secret data keys
 * are the file names under /etc/kubernetes/ssl (`kube-node.pem`,
 * `kube-node-key.pem`), mapped to the cert paths the plan uses.
 */
export function providedFromBundle(catalog: DistributionCatalog, dataDir: string, data: Readonly<Record<string, string>>): ProvidedMaterial {
  const dir = posix.dirname(fillPath(catalog.cas[0]!.files.cert, { dataDir }));
  const out = new Map<string, { certPem: string; keyPem: string }>();
  for (const k of Object.keys(data)) {
    if (!k.endsWith('.pem') || k.endsWith('-key.pem')) continue;
    const name = k.slice(0, -'.pem'.length);
    if (name.includes('/') || name.startsWith('.')) throw new Error(`bundle entry ${k}: not a file name`);
    const key = data[`${name}-key.pem`];
    if (key === undefined) throw new Error(`bundle entry ${k} has no ${name}-key.pem`);
    out.set(posix.join(dir, k), { certPem: Buffer.from(data[k]!, 'base64').toString('utf8'), keyPem: Buffer.from(key, 'base64').toString('utf8') });
  }
  return out;
}

export interface HostRunner {
  run(spec: NodeRotationSpec, onProgress: (e: ProgressEvent) => void): Promise<NodeRotationResult>;
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
  /** Reads the bundle Secret a NodeRotation names (spec.bundleSecretRef, RKE). */
  readSecret?: SecretReader;
}

export class CatalogHostRunner implements HostRunner {
  constructor(private readonly o: CatalogHostRunnerOptions) {}

  async check(spec: NodeRotationSpec): Promise<CertificateReport[]> {
    const catalog = catalogFor(spec.distribution);
    const dataDir = this.o.dataDir ?? catalog.defaultDataDir;
    const reports = await inspectNode(catalog, openHost(catalog, this.o.hostRoot, dataDir), spec.role.split(',') as NodeRole[], dataDir);
    // The CA files are reported by `node check` too, but they are not what a rotation renews.
    return reports.filter((r) => spec.services.includes(r.service));
  }

  run(spec: NodeRotationSpec, onProgress: (e: ProgressEvent) => void): Promise<NodeRotationResult> {
    const catalog = catalogFor(spec.distribution);
    const dataDir = this.o.dataDir ?? catalog.defaultDataDir;
    const ref = spec.bundleSecretRef;
    // Read only when a new run is prepared; a resumed run has it staged already.
    const provided = ref
      ? async (): Promise<ProvidedMaterial> => {
          if (spec.distribution !== 'rke') throw new Error(`spec.bundleSecretRef is for RKE only, not ${spec.distribution}`);
          if (!this.o.readSecret) throw new Error('this agent cannot read the bundle Secret (no API access configured)');
          const secret = await this.o.readSecret(ref);
          if (!secret) throw new Error(`the controller-issued bundle Secret ${ref.namespace}/${ref.name} does not exist`);
          // One bundle name serves every run: only this run's may be installed.
          const run = secret.annotations[BUNDLE_RUN_ANNOTATION];
          if (run !== spec.runID) throw new Error(`the bundle Secret ${ref.namespace}/${ref.name} was issued for run ${run ?? '(none)'}, not this run ${spec.runID}`);
          return providedFromBundle(catalog, dataDir, secret.data);
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
