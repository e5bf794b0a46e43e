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

export interface HostRunner {
  run(spec: NodeRotationSpec, onProgress: (e: ProgressEvent) => void): Promise<NodeRotationResult>;
}

export interface CatalogHostRunnerOptions {
  /** Where the node's filesystem is mounted (`/` on the node itself, `/host` in the DaemonSet). */
  hostRoot: string;
  /** The distribution's data dir relative to the host root; the catalog's default when absent. */
  dataDir?: string;
  /** The address this node's endpoints answer on, for probes and served-certificate checks. */
  nodeIP: string;
  executor: RestartExecutor;
}

export class CatalogHostRunner implements HostRunner {
  constructor(private readonly o: CatalogHostRunnerOptions) {}

  run(spec: NodeRotationSpec, onProgress: (e: ProgressEvent) => void): Promise<NodeRotationResult> {
    const catalog = catalogFor(spec.distribution);
    const dataDir = this.o.dataDir ?? catalog.defaultDataDir;
    return runNodeRotation({
      catalog,
      host: openHost(catalog, this.o.hostRoot, dataDir),
      scope: hostScope(spec),
      roles: spec.role.split(',') as ('etcd' | 'controlplane' | 'worker')[],
      dataDir,
      nodeIP: this.o.nodeIP,
      restart: spec.restart,
      executor: this.o.executor,
      runId: spec.runID,
      // Halt means "stop and touch nothing": the failed node is left as it is for a person.
      rollbackOnFailure: spec.onFailure === 'Rollback',
      // The whole node step must fit in spec.timeout; the restarted components
      // get most of it to come back.
      verifyTimeoutMs: Math.max(5_000, Math.floor(parseDuration(spec.timeout) * 0.8)),
      onProgress,
    });
  }
}
