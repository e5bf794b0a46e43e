// Planning a rotation run and deciding its next step — pure functions, so the
// cascade's rules (order, one server at a time, workers maxUnavailable at a
// time, stop on failure, pause) are tested without a cluster.
//
// Order (design.md §2, reference §3.3 and §2.3):
// - RKE2 follows Rancher's planner (collectOrderedCertificateRotationEntries):
//   etcd-only (incl. etcd+worker) → etcd+controlplane → controlplane-only → workers.
// - RKE follows `rke cert rotate`: etcd plane → control plane → workers.
// - Within a group, by node name (byte order, not locale order, so every
//   controller replica computes the same plan).
// Only nodes relevant to the service are planned (Rancher's shouldRotateEntry
// table, in services.ts).

import type { V1Node } from '@kubernetes/client-node';
import { REASONS, type FailurePolicy, type NodePhase, type Scope } from '../api/constants.js';
import type { LabelSelector } from '../api/common.js';
import {
  SERVICE_ROLES,
  SERVICES_BY_DISTRIBUTION,
  isServiceOf,
  type Distribution,
  type NodeRole,
} from '../distributions/services.js';
import { isServer, nodeRoles, roleString } from './detect.js';
import { phaseOf, tallyRun, type RunTally } from './run-tally.js';

export interface PlanInput {
  nodes: readonly V1Node[];
  distribution: Distribution;
  scope: Scope;
  /** Required when scope is Service. */
  service?: string;
  /** Workers in flight at once (spec.strategy.maxUnavailable, ≥ 1). */
  maxUnavailable: number;
  nodeSelector?: LabelSelector;
  /** Refuse more nodes than this (Plan mode: the size of status.plan.nodes). Absent: no limit. */
  maxNodes?: number;
}

export interface PlannedNode {
  name: string;
  roles: NodeRole[];
  /** Role string, e.g. `etcd,controlplane`. */
  role: string;
  /** Servers (etcd or control plane) go one at a time; workers maxUnavailable at a time. */
  kind: 'server' | 'worker';
  /** Position of the node's role group in the distribution's order (0 first). */
  group: number;
  /** Nodes with the same batch may be in flight together (servers: always alone). */
  batch: number;
  /** Services to renew on this node, in services.ts order. */
  services: string[];
}

export interface SkippedNode {
  name: string;
  reason: string;
}

export interface Plan {
  distribution: Distribution;
  maxUnavailable: number;
  /** Every planned node in rotation order: servers first, then workers. */
  nodes: PlannedNode[];
  /** Selected nodes that will not be touched, and why (for Plan mode and logs). */
  skipped: SkippedNode[];
}

export type PlanResult =
  | { ok: true; plan: Plan }
  | { ok: false; reason: 'ServiceNotInDistribution' | 'NoNodesSelected' | 'PlanTooLarge'; message: string };

/** Does a label set satisfy a LabelSelector? Absent or empty selector: everything. */
export function matchesSelector(labels: Record<string, string> | undefined, selector: LabelSelector | undefined): boolean {
  if (!selector) return true;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (l[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[e.key]!)) return false;
        break;
      case 'NotIn':
        // Kubernetes semantics: a node without the label is "not in".
        if (has && values.includes(l[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** Is `service` relevant to a node with these roles (Rancher's relevance table)? */
export function isRelevant(distribution: Distribution, service: string, roles: readonly NodeRole[]): boolean {
  const relevantTo = SERVICE_ROLES[distribution][service] ?? [];
  return roles.some((r) => relevantTo.includes(r));
}

/** The services a node renews: the one named, or every service relevant to its roles. */
export function servicesForNode(
  distribution: Distribution,
  scope: Scope,
  service: string | undefined,
  roles: readonly NodeRole[],
): string[] {
  const candidates = scope === 'Service' ? [service!] : SERVICES_BY_DISTRIBUTION[distribution];
  return candidates.filter((s) => isRelevant(distribution, s, roles));
}

/** Position of a node's role group in the distribution's rotation order. */
export function roleGroup(distribution: Distribution, roles: readonly NodeRole[]): number {
  const etcd = roles.includes('etcd');
  const cp = roles.includes('controlplane');
  if (distribution === 'rke2') {
    if (etcd && !cp) return 0;
    if (etcd && cp) return 1;
    if (cp) return 2;
    return 3;
  }
  if (etcd) return 0;
  if (cp) return 1;
  return 2;
}

/** Byte order of names, not locale order, so every controller replica orders the same way. */
export function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

type Classified = Omit<PlannedNode, 'batch'> | SkippedNode | undefined;

// A run re-derives its nodes on every pass (run-state.ts), at 5,000 nodes
// thousands of times per run. The informer keeps an unchanged Node as the same
// object, so what a node is for one kind of plan is worked out once per
// version of that Node.
const classified = new WeakMap<V1Node, Map<string, Classified>>();

function classifyKey(input: PlanInput): string {
  return JSON.stringify([input.distribution, input.scope, input.service ?? null, input.nodeSelector ?? null]);
}

/** Whether the plan selects this node, and as what: planned, skipped (with why), or not selected (undefined). */
function classify(node: V1Node, input: PlanInput, key: string): Classified {
  let memo = classified.get(node);
  if (memo?.has(key)) return memo.get(key);
  const { distribution, scope, service } = input;
  const out = ((): Classified => {
    const name = node.metadata?.name;
    if (!name) return undefined;
    if (!matchesSelector(node.metadata?.labels, input.nodeSelector)) return undefined;
    const roles = nodeRoles(node, distribution);
    if (roles.length === 0) return { name, reason: `no ${distribution} role label` };
    const services = servicesForNode(distribution, scope, service, roles);
    if (services.length === 0) return { name, reason: `${service ?? 'no service'} is not relevant to role ${roleString(roles)}` };
    return { name, roles, role: roleString(roles), kind: isServer(roles) ? 'server' : 'worker', group: roleGroup(distribution, roles), services };
  })();
  if (!memo) classified.set(node, (memo = new Map()));
  memo.set(key, out);
  return out;
}

/** Select, classify, filter and order the nodes of one run. */
export function planRotation(input: PlanInput): PlanResult {
  const { distribution, scope, service } = input;
  if (scope === 'Service' && (!service || !isServiceOf(distribution, service))) {
    return {
      ok: false,
      reason: 'ServiceNotInDistribution',
      message: `spec.service "${service ?? ''}" is not a service of ${distribution}; ${distribution} services are: ${SERVICES_BY_DISTRIBUTION[distribution].join(', ')}`,
    };
  }
  const maxUnavailable = Math.max(1, Math.floor(input.maxUnavailable));
  const skipped: SkippedNode[] = [];
  const candidates: Omit<PlannedNode, 'batch'>[] = [];

  const key = classifyKey(input);
  for (const node of input.nodes) {
    const c = classify(node, input, key);
    if (c === undefined) continue;
    if ('reason' in c) skipped.push(c);
    else candidates.push(c);
  }
  if (candidates.length === 0) {
    const why = skipped.length > 0 ? `${skipped.length} selected node(s) skipped, e.g. ${skipped[0]!.name}: ${skipped[0]!.reason}` : 'no node matches spec.strategy.nodeSelector';
    return { ok: false, reason: 'NoNodesSelected', message: `nothing to rotate: ${why}` };
  }

  // A plan's status.plan.nodes holds one entry per planned node, up to the
  // schema's limit: a larger plan would make every status write a 422 and it
  // would never finish. Said at once instead, with what to do. (An Apply run's
  // status does not list every node and has no such limit.)
  if (input.maxNodes !== undefined && candidates.length > input.maxNodes) {
    return {
      ok: false,
      reason: REASONS.planTooLarge,
      message: `${candidates.length} nodes selected; a Plan-mode rotation covers at most ${input.maxNodes} (the size of its status.plan). Split the cluster with spec.strategy.nodeSelector into plans of at most ${input.maxNodes} nodes each, or use mode Apply, which has no such limit`,
    };
  }

  candidates.sort((a, b) => a.group - b.group || byName(a, b));
  const servers = candidates.filter((c) => c.kind === 'server');
  const workers = candidates.filter((c) => c.kind === 'worker');
  const nodes: PlannedNode[] = [
    ...servers.map((c, i) => ({ ...c, batch: i })),
    ...workers.map((c, i) => ({ ...c, batch: servers.length + Math.floor(i / maxUnavailable) })),
  ];
  skipped.sort(byName);
  return { ok: true, plan: { distribution, maxUnavailable, nodes, skipped } };
}

// ---------------------------------------------------------------------------
// The cascade: what to do next, given where every node is.

/** What the controller knows about a node of the run (status.nodes[]). */
export interface NodeProgress {
  phase: NodePhase;
  /** RFC 3339; set when the node went Updating. */
  startedAt?: string;
  message?: string;
}

export interface CascadeInput {
  plan: Plan;
  /** By node name; a planned node with no entry is Pending. */
  progress: ReadonlyMap<string, NodeProgress>;
  paused: boolean;
  onFailure: FailurePolicy;
  /** spec.strategy.nodeTimeout in milliseconds. */
  nodeTimeoutMs: number;
  now: Date;
}

export type NextStep =
  /** Record these nodes as Updating in status, then create their NodeRotations. */
  | { kind: 'start'; nodes: PlannedNode[] }
  /** Nothing to start now; come back when a node in flight reports. */
  | { kind: 'wait'; reason: 'InFlight' | 'Paused'; inFlight: string[] }
  /** These nodes overran nodeTimeout: record them Failed (reason NodeTimeout); the run then stops. */
  | { kind: 'timedOut'; nodes: string[] }
  /**
   * A node failed or rolled back: start nothing more. The nodes still in
   * flight finish; the run is over when `inFlight` is empty.
   */
  | { kind: 'failed'; failed: { name: string; phase: NodePhase; message?: string }[]; inFlight: string[]; onFailure: FailurePolicy }
  /** Every planned node is Rotated or Skipped. */
  | { kind: 'done' };

export function nextStep(input: CascadeInput, tally: RunTally = tallyRun(input.plan, input.progress)): NextStep {
  const { plan, progress, now } = input;
  const { inFlight, broken } = tally;

  const overdue = inFlight.filter((n) => {
    const started = progress.get(n.name)?.startedAt;
    return started !== undefined && now.getTime() - Date.parse(started) > input.nodeTimeoutMs;
  });
  if (overdue.length > 0) return { kind: 'timedOut', nodes: overdue.map((n) => n.name) };

  if (broken.length > 0) {
    return {
      kind: 'failed',
      failed: broken.map((n) => ({ name: n.name, phase: phaseOf(progress, n.name), message: progress.get(n.name)?.message })),
      inFlight: inFlight.map((n) => n.name),
      onFailure: input.onFailure,
    };
  }

  if (tally.pending === 0 && inFlight.length === 0) return { kind: 'done' };
  const inFlightNames = inFlight.map((n) => n.name);
  if (input.paused || tally.pending === 0) {
    return { kind: 'wait', reason: input.paused ? 'Paused' : 'InFlight', inFlight: inFlightNames };
  }

  const serversLeft = tally.servers.done < tally.servers.total;
  if (serversLeft) {
    if (inFlight.length > 0) return { kind: 'wait', reason: 'InFlight', inFlight: inFlightNames };
    return { kind: 'start', nodes: [tally.nextServer!] };
  }

  const slots = plan.maxUnavailable - tally.workers.updating;
  if (slots <= 0) return { kind: 'wait', reason: 'InFlight', inFlight: inFlightNames };
  return { kind: 'start', nodes: tally.nextWorkers.slice(0, slots) };
}
