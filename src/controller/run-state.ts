// Reading a run back from what is durable: the CertificateRotation's status
// and the run's NodeRotations. The status holds what the run rotates (runSpec,
// frozen at its start), the nodes in flight and the ones that stopped
// (status.nodes, bounded); each node the run finished has its NodeRotation
// with the agent's report. The run is what rebuildRun makes of those and the
// Node cache; a pass decides from it and writes back only the bounded part
// (compactRun): the status does not grow with the fleet, and a hand-off at
// 5,000 nodes rewrites as little as one at 5. (The controller keeps the
// rebuilt run between passes rather than rebuilding it each time: run-index.ts.)
//
// The run's nodes are the Nodes runSpec selects that existed when it started,
// plus every node it already touched: a node that joins mid-run waits for the
// next run, and one that leaves before its turn drops out of the plan.
import type { V1Node } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { nodeScope, type CertificateRotation, type CertificateRotationSpec, type CertificateRotationStatus, type NodeStatus, type RoleCounts, type RunSpec } from '../api/certificaterotation.js';
import { MAX_SKIPPED_LISTED, REASONS, type NodePhase } from '../api/constants.js';
import type { NodeRotation } from '../api/noderotation.js';
import type { Distribution, NodeRole } from '../distributions/services.js';
import type { RunNodeProgress } from './conditions.js';
import { isServer } from './detect.js';
import { byName, planRotation, roleGroup, servicesForNode, type Plan, type PlannedNode } from './plan.js';

/** Hash of WHAT a run rotates. Knobs that only steer a run (paused, strategy) are left out on purpose. */
export function runFingerprint(spec: CertificateRotationSpec): string {
  const what = {
    distribution: spec.distribution ?? null,
    scope: spec.scope,
    service: spec.service ?? null,
    mode: spec.mode,
    nodeSelector: spec.strategy?.nodeSelector ?? null,
    // scope Secrets: which targets; absent for node scopes, so their fingerprints are as before.
    ...(spec.secrets ? { secrets: spec.secrets } : {}),
  };
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 16);
}

/**
 * The generation a running run's status observes. A spec change that keeps WHAT
 * is rotated (paused, maxUnavailable, nodeTimeout, onFailure) is absorbed into
 * the run; one that changes it is not observed yet (kstatus then reads "in
 * progress") and starts its own run when this one ends. Node and Secrets runs alike.
 */
export function observedGenerationOf(rotation: CertificateRotation, status: CertificateRotationStatus): number {
  return status.runFingerprint === runFingerprint(rotation.spec) ? rotation.metadata.generation! : status.observedGeneration;
}

/** Conditions the controller sets before any node started: recomputed every pass, never "settled". */
const PRE_RUN_PROBLEMS: readonly string[] = [REASONS.serviceNotInDistribution, REASONS.distributionUnknown, REASONS.noNodesSelected, REASONS.discoveryForbidden, REASONS.secretTargetsNotRenewable];

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
  // A fleet has a handful of role strings; what each means is worked out once
  // (at 5,000 nodes, per node, it was most of a full rebuild of the run).
  const byRole = new Map<string, Pick<PlannedNode, 'roles' | 'kind' | 'group' | 'services'>>();
  for (const n of nodes) {
    let facts = byRole.get(n.role);
    if (!facts) {
      const roles = rolesOf(n.role);
      facts = {
        roles,
        kind: isServer(roles) ? 'server' : 'worker',
        group: roleGroup(distribution, roles),
        services: servicesForNode(distribution, nodeScope(spec.scope), spec.service, roles),
      };
      byRole.set(n.role, facts);
    }
    const batch = facts.kind === 'server' ? servers++ : -1;
    planned.push({ name: n.name, roles: facts.roles, role: n.role, kind: facts.kind, group: facts.group, batch, services: facts.services });
  }
  for (const p of planned) if (p.kind === 'worker') p.batch = servers + Math.floor(workers++ / maxUnavailable);
  return { distribution, maxUnavailable, nodes: planned, skipped: [] };
}

/** One node's entry as the progress the pure cascade and summary functions take. */
export function progressOf(n: NodeStatus): RunNodeProgress {
  return { phase: n.phase, startedAt: n.startedAt, message: n.message, step: n.step, timedOut: n.reason === REASONS.nodeTimeout };
}

/** The run's entries as the progress map the pure cascade and summary functions take. */
export function progressFromStatus(nodes: readonly NodeStatus[]): Map<string, RunNodeProgress> {
  return new Map(nodes.map((n) => [n.name, progressOf(n)]));
}

export const FINISHED_BY_AGENT: readonly NodePhase[] = ['Rotated', 'Failed', 'RolledBack'];

/** What a run rotates, as the spec says when it starts. */
export function runSpecOf(spec: CertificateRotationSpec): RunSpec {
  return {
    scope: nodeScope(spec.scope),
    ...(spec.service !== undefined ? { service: spec.service } : {}),
    ...(spec.strategy.nodeSelector !== undefined ? { nodeSelector: spec.strategy.nodeSelector } : {}),
  };
}

/** The agent's report on a NodeRotation is about that NodeRotation's run (not an earlier object of the same name). */
export function reportIsCurrent(nr: NodeRotation): boolean {
  return nr.status?.runID === undefined || nr.status.runID === nr.spec.runID;
}

/**
 * The nodes a rotation's latest run rotated, each with when it finished (ms;
 * the run's completedAt when the agent's report has no time), from its
 * NodeRotations: the status lists only the nodes that did not rotate.
 */
export function rotatedNodes(rotation: CertificateRotation, nodeRotations: readonly NodeRotation[]): Map<string, number> {
  const out = new Map<string, number>();
  const generation = rotation.status?.runGeneration;
  for (const nr of nodeRotations) {
    if (nr.spec.generation !== generation || nr.spec.action === 'Check' || nr.status?.phase !== 'Rotated' || !reportIsCurrent(nr)) continue;
    out.set(nr.spec.nodeName, Date.parse(nr.status.finishedAt ?? rotation.status?.completedAt ?? ''));
  }
  return out;
}

/** Whole seconds, as metav1.Time has them: a Node created in the second the run started belongs to it. */
const createdBy = (node: V1Node, startedAt: string): boolean => {
  const t = node.metadata?.creationTimestamp as unknown as string | Date | undefined;
  if (t === undefined) return true;
  // The API server writes both as RFC 3339 in UTC with whole seconds, which order as strings.
  if (typeof t === 'string' && t.length === startedAt.length && t.endsWith('Z') && startedAt.endsWith('Z')) return t <= startedAt;
  const ms = new Date(t).getTime();
  return Number.isNaN(ms) || Math.floor(ms / 1000) <= Math.floor(Date.parse(startedAt) / 1000);
};

export interface RunSources {
  distribution: Distribution;
  runSpec: RunSpec;
  /** status.startedAt of the run. */
  startedAt: string;
  /** status.nodes: the nodes in flight and the ones that stopped. */
  recorded: readonly NodeStatus[];
  /** The Node cache. */
  nodes: readonly V1Node[];
  /** The run's NodeRotations (spec.generation is the run's). */
  nodeRotations: readonly NodeRotation[];
  /** status.nextNodes: Pending here even if their NodeRotation reports; the cascade adopts them (cascade.ts step 0). */
  next?: readonly string[];
}

/**
 * Every node of the run with its phase, in plan order (role group, then name):
 * what status.nodes once held whole. A recorded entry wins; else a node whose
 * NodeRotation reports Rotated is Rotated (unless status names it next: the
 * cascade takes its report, as a kept run does); else a node of the plan is Pending.
 */
export function rebuildRun(src: RunSources): NodeStatus[] {
  const planned = planRotation({
    nodes: src.nodes.filter((n) => createdBy(n, src.startedAt)),
    distribution: src.distribution,
    scope: src.runSpec.scope,
    service: src.runSpec.service,
    maxUnavailable: 1,
    nodeSelector: src.runSpec.nodeSelector,
  });
  // The plan's order (role group, then name) is kept; a node the plan no longer
  // holds (its Node gone or changed) is put back in that order.
  const entriesByName = new Map<string, NodeStatus>();
  if (planned.ok) for (const n of planned.plan.nodes) entriesByName.set(n.name, { name: n.name, role: n.role, phase: 'Pending' });
  let outside = false;
  const put = (e: NodeStatus): void => {
    if (!entriesByName.has(e.name)) outside = true;
    entriesByName.set(e.name, e);
  };
  const next = new Set(src.next ?? []);
  for (const nr of src.nodeRotations) {
    if (nr.status?.phase !== 'Rotated' || !reportIsCurrent(nr) || next.has(nr.spec.nodeName)) continue;
    const e: NodeStatus = { name: nr.spec.nodeName, role: nr.spec.role, phase: 'Rotated' };
    if (nr.status.startedAt) e.startedAt = nr.status.startedAt;
    if (nr.status.finishedAt) e.finishedAt = nr.status.finishedAt;
    put(e);
  }
  for (const r of src.recorded) put({ ...r });
  const entries = [...entriesByName.values()];
  if (!outside) return entries;
  const groups = new Map(entries.map((e) => [e.name, roleGroup(src.distribution, rolesOf(e.role))]));
  return entries.sort((a, b) => groups.get(a.name)! - groups.get(b.name)! || byName(a, b));
}

/** Stopped nodes whose message status.nodes keeps; the others keep phase, step and reason (their NodeRotation has the message). */
export const STOPPED_WITH_MESSAGE = 5;

/**
 * The part of the run status.nodes keeps: the nodes in flight and the ones
 * that stopped (at most one batch; the first few with their message), and the
 * latest few skipped while in flight (a Skipped node's Node is gone, so
 * forgetting it changes nothing).
 */
export function compactRun(entries: readonly NodeStatus[]): NodeStatus[] {
  const skipped = entries.filter((e) => e.phase === 'Skipped');
  const keepSkipped = new Set(
    [...skipped].sort((a, b) => Date.parse(b.finishedAt ?? '') - Date.parse(a.finishedAt ?? '')).slice(0, MAX_SKIPPED_LISTED).map((e) => e.name),
  );
  let stopped = 0;
  const out: NodeStatus[] = [];
  for (const e of entries) {
    if (e.phase === 'Pending' || e.phase === 'Rotated' || (e.phase === 'Skipped' && !keepSkipped.has(e.name))) continue;
    if ((e.phase === 'Failed' || e.phase === 'RolledBack') && ++stopped > STOPPED_WITH_MESSAGE && e.message !== undefined) {
      const { message: _dropped, ...rest } = e;
      out.push(rest);
    } else out.push(e);
  }
  return out;
}

/** status.counts: nodes per phase for each role string, in plan order of first appearance. */
export function countRun(entries: readonly NodeStatus[]): RoleCounts[] {
  const out = new Map<string, RoleCounts>();
  for (const e of entries) {
    let c = out.get(e.role);
    if (!c) out.set(e.role, (c = { role: e.role, planned: 0, pending: 0, updating: 0, rotated: 0, failed: 0, skipped: 0 }));
    c.planned++;
    if (e.phase === 'Pending') c.pending++;
    else if (e.phase === 'Updating') c.updating++;
    else if (e.phase === 'Rotated') c.rotated++;
    else if (e.phase === 'Failed' || e.phase === 'RolledBack') c.failed++;
    else if (e.phase === 'Skipped') c.skipped++;
  }
  return [...out.values()];
}

// A run keeps its plan object between passes (run-index.ts): described once.
const described = new WeakMap<Plan, string>();

/** status.planDescription: the run's order in words. */
export function describePlan(plan: Plan): string {
  let text = described.get(plan);
  if (text === undefined) described.set(plan, (text = describeOrder(plan)));
  return text;
}

function describeOrder(plan: Plan): string {
  const servers = plan.nodes.filter((n) => n.kind === 'server');
  const workers = plan.nodes.length - servers.length;
  const names = servers.slice(0, 5).map((n) => n.name).join(', ') + (servers.length > 5 ? ` and ${servers.length - 5} more` : '');
  const first = servers.length > 0 ? `${servers.length} server node(s) one at a time (${names})` : 'no server node';
  const then = workers > 0 ? `${workers} worker node(s) by name, ${plan.maxUnavailable} at a time` : 'no worker node';
  return `${first}, then ${then}; nodes that joined after the run started wait for the next run`.slice(0, 1024);
}
