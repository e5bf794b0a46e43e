// Reading a run back from CertificateRotation status. The status IS the run's
// durable state: the plan is frozen into status.nodes when the run starts and
// rebuilt from there on every pass (never re-planned from the live Node list,
// so a node added, relabelled or removed mid-run cannot reorder the cascade or
// turn a worker into a server under our feet).
import { createHash } from 'node:crypto';
import type { CertificateRotation, CertificateRotationSpec, CertificateRotationStatus, NodeStatus } from '../api/certificaterotation.js';
import { REASONS, type NodePhase } from '../api/constants.js';
import type { Distribution, NodeRole } from '../distributions/services.js';
import type { RunNodeProgress } from './conditions.js';
import { isServer } from './detect.js';
import { roleGroup, servicesForNode, type Plan, type PlannedNode } from './plan.js';

/** Hash of WHAT a run rotates. Knobs that only steer a run (paused, strategy) are left out on purpose. */
export function runFingerprint(spec: CertificateRotationSpec): string {
  const what = {
    distribution: spec.distribution ?? null,
    scope: spec.scope,
    service: spec.service ?? null,
    mode: spec.mode,
    nodeSelector: spec.strategy?.nodeSelector ?? null,
  };
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 16);
}

/** Conditions the controller sets before any node started: recomputed every pass, never "settled". */
const PRE_RUN_PROBLEMS: readonly string[] = [REASONS.serviceNotInDistribution, REASONS.distributionUnknown, REASONS.noNodesSelected];

export function preRunProblem(status: CertificateRotationStatus | undefined): boolean {
  const stalled = status?.conditions?.find((c) => c.type === 'Stalled');
  return stalled?.status === 'True' && PRE_RUN_PROBLEMS.includes(stalled.reason);
}

/** A run that has started and not ended: it continues whatever else happens (spec changes, other rotations). */
export function runActive(status: CertificateRotationStatus | undefined): boolean {
  return status?.runGeneration !== undefined && (status.phase === 'Progressing' || status.phase === 'Paused');
}

/**
 * A Plan-mode generation whose checks are out (status.plan written, not yet
 * Planned): it continues from status.plan, like a run from status.nodes.
 */
export function planInProgress(rotation: CertificateRotation): boolean {
  const status = rotation.status;
  return (
    rotation.spec.mode === 'Plan' &&
    status?.plan !== undefined &&
    status.observedGeneration === rotation.metadata.generation &&
    status.phase === 'Pending' &&
    status.startedAt !== undefined
  );
}

/**
 * This generation needs nothing more: its run (or plan) ended and nothing in
 * the spec changed since. A pre-run problem is never settled: the nodes may
 * change and make it go away.
 */
export function settled(rotation: CertificateRotation): boolean {
  const status = rotation.status;
  if (!status || status.observedGeneration !== rotation.metadata.generation) return false;
  if (preRunProblem(status)) return false;
  return status.phase === 'Succeeded' || status.phase === 'Failed' || status.phase === 'Planned';
}

export function rolesOf(role: string): NodeRole[] {
  return role.split(',').filter((r): r is NodeRole => r === 'etcd' || r === 'controlplane' || r === 'worker');
}

/** The frozen plan of the run, rebuilt from status.nodes (order kept), with the spec's current maxUnavailable. */
export function planFromStatus(
  distribution: Distribution,
  spec: CertificateRotationSpec,
  nodes: readonly NodeStatus[],
): Plan {
  const maxUnavailable = Math.max(1, Math.floor(spec.strategy.maxUnavailable));
  const planned: PlannedNode[] = [];
  let servers = 0;
  let workers = 0;
  for (const n of nodes) {
    const roles = rolesOf(n.role);
    const kind = isServer(roles) ? 'server' : 'worker';
    const batch = kind === 'server' ? servers++ : -1;
    planned.push({
      name: n.name,
      roles,
      role: n.role,
      kind,
      group: roleGroup(distribution, roles),
      batch,
      services: servicesForNode(distribution, spec.scope, spec.service, roles),
    });
  }
  for (const p of planned) if (p.kind === 'worker') p.batch = servers + Math.floor(workers++ / maxUnavailable);
  return { distribution, maxUnavailable, nodes: planned, skipped: [] };
}

/** status.nodes as the progress map the pure cascade and summary functions take. */
export function progressFromStatus(nodes: readonly NodeStatus[]): Map<string, RunNodeProgress> {
  const progress = new Map<string, RunNodeProgress>();
  for (const n of nodes) {
    progress.set(n.name, {
      phase: n.phase,
      startedAt: n.startedAt,
      message: n.message,
      step: n.step,
      timedOut: n.reason === REASONS.nodeTimeout,
    });
  }
  return progress;
}

export const FINISHED_BY_AGENT: readonly NodePhase[] = ['Rotated', 'Failed', 'RolledBack'];
