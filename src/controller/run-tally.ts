// Where every node of a run is, counted: what nextStep, the run's summary and
// status.counts read. Built once by walking the plan (tallyRun), then kept
// with the run between passes (run-index.ts) and moved node by node as a pass
// changes phases (moveNode), so that a hand-off at 5,000 nodes does not walk
// 5,000 nodes. The walk stays the definition: the unit tests' fake compares
// the moved tally with a fresh walk after every pass.
import type { RoleCounts } from '../api/certificaterotation.js';
import type { NodePhase } from '../api/constants.js';
import type { NodeProgress, Plan, PlannedNode } from './plan.js';

/** One kind of node (servers or workers) of a run, counted. */
export interface KindTally {
  total: number;
  /** Rotated or Skipped. */
  done: number;
  updating: number;
  /** Neither done, nor in flight, nor broken. */
  pending: number;
  /** The first Failed or RolledBack, in plan order. */
  firstBroken?: PlannedNode;
}

export interface RunTally {
  /** Updating, in plan order. */
  inFlight: PlannedNode[];
  /** Failed or RolledBack, in plan order. */
  broken: PlannedNode[];
  /** Skipped, in plan order. */
  skipped: PlannedNode[];
  servers: KindTally;
  workers: KindTally;
  /** Pending nodes of both kinds. */
  pending: number;
  /** No pending node comes before this position in the plan. */
  cursor: number;
  /** The first pending server, and the first pending workers (up to maxUnavailable), in plan order. */
  nextServer?: PlannedNode;
  nextWorkers: PlannedNode[];
  /** status.counts: per role string, in plan order of first appearance. */
  roles: RoleCounts[];
}

type Bucket = 'done' | 'updating' | 'broken' | 'pending';

const bucketOf = (phase: NodePhase): Bucket =>
  phase === 'Rotated' || phase === 'Skipped' ? 'done' : phase === 'Updating' ? 'updating' : phase === 'Failed' || phase === 'RolledBack' ? 'broken' : 'pending';

const roleField = (phase: NodePhase): keyof Omit<RoleCounts, 'role' | 'planned'> =>
  phase === 'Pending'
    ? 'pending'
    : phase === 'Updating'
      ? 'updating'
      : phase === 'Rotated'
        ? 'rotated'
        : phase === 'Failed' || phase === 'RolledBack'
          ? 'failed'
          : phase === 'Skipped'
            ? 'skipped'
            : 'pending';

/** A node's phase in a run's progress; a planned node with no entry is Pending. */
export function phaseOf(progress: ReadonlyMap<string, NodeProgress>, name: string): NodePhase {
  return progress.get(name)?.phase ?? 'Pending';
}

/** The tally of the whole plan, by walking it. */
export function tallyRun(plan: Plan, progress: ReadonlyMap<string, NodeProgress>): RunTally {
  const t: RunTally = {
    inFlight: [],
    broken: [],
    skipped: [],
    servers: { total: 0, done: 0, updating: 0, pending: 0 },
    workers: { total: 0, done: 0, updating: 0, pending: 0 },
    pending: 0,
    cursor: plan.nodes.length,
    nextWorkers: [],
    roles: [],
  };
  const roles = new Map<string, RoleCounts>();
  plan.nodes.forEach((n, i) => {
    const phase = phaseOf(progress, n.name);
    const k = n.kind === 'server' ? t.servers : t.workers;
    k.total++;
    let c = roles.get(n.role);
    if (!c) roles.set(n.role, (c = { role: n.role, planned: 0, pending: 0, updating: 0, rotated: 0, failed: 0, skipped: 0 }));
    c.planned++;
    c[roleField(phase)]++;
    if (phase === 'Skipped') t.skipped.push(n);
    switch (bucketOf(phase)) {
      case 'done':
        k.done++;
        break;
      case 'updating':
        k.updating++;
        t.inFlight.push(n);
        break;
      case 'broken':
        t.broken.push(n);
        k.firstBroken ??= n;
        break;
      case 'pending':
        k.pending++;
        t.pending++;
        t.cursor = Math.min(t.cursor, i);
        if (n.kind === 'server') t.nextServer ??= n;
        else if (t.nextWorkers.length < plan.maxUnavailable) t.nextWorkers.push(n);
    }
  });
  t.roles = [...roles.values()];
  return t;
}

/** A copy that moveNode may change without touching `t` (a pass's write may be refused). */
export function copyTally(t: RunTally): RunTally {
  return {
    ...t,
    inFlight: [...t.inFlight],
    broken: [...t.broken],
    skipped: [...t.skipped],
    servers: { ...t.servers },
    workers: { ...t.workers },
    nextWorkers: [...t.nextWorkers],
    roles: t.roles.map((c) => ({ ...c })),
  };
}

/**
 * Moves one node of the plan from phase `from` to phase `to` in `t` (changed
 * in place). `position` gives each node's index in the plan; `progress` must
 * already hold `to` for this node (the next pending nodes are found from it).
 */
export function moveNode(
  t: RunTally,
  plan: Plan,
  position: ReadonlyMap<string, number>,
  progress: ReadonlyMap<string, NodeProgress>,
  name: string,
  from: NodePhase,
  to: NodePhase,
): void {
  if (from === to) return;
  const i = position.get(name)!;
  const n = plan.nodes[i]!;
  const k = n.kind === 'server' ? t.servers : t.workers;
  const without = (list: PlannedNode[]): PlannedNode[] => list.filter((x) => x.name !== name);
  // Inserted at its place in plan order (the lists are kept in that order): a pass moves a few nodes of 5,000.
  const withIt = (list: PlannedNode[]): PlannedNode[] => {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (position.get(list[mid]!.name)! < i) lo = mid + 1;
      else hi = mid;
    }
    return [...list.slice(0, lo), n, ...list.slice(lo)];
  };

  const c = t.roles.find((r) => r.role === n.role)!;
  c[roleField(from)]--;
  c[roleField(to)]++;
  if (from === 'Skipped') t.skipped = without(t.skipped);
  if (to === 'Skipped') t.skipped = withIt(t.skipped);

  const out = bucketOf(from);
  const into = bucketOf(to);
  if (out !== into) {
    if (out === 'done') k.done--;
    else if (out === 'updating') (k.updating--, (t.inFlight = without(t.inFlight)));
    else if (out === 'broken') t.broken = without(t.broken);
    else (k.pending--, t.pending--);
    if (into === 'done') k.done++;
    else if (into === 'updating') (k.updating++, (t.inFlight = withIt(t.inFlight)));
    else if (into === 'broken') t.broken = withIt(t.broken);
    else (k.pending++, t.pending++, (t.cursor = Math.min(t.cursor, i)));
    if (out === 'broken' || into === 'broken') k.firstBroken = t.broken.find((x) => x.kind === n.kind);
  }
  if (out === 'pending' || into === 'pending') findNext(t, plan, progress);
}

/** nextServer and nextWorkers from the cursor on (the cursor first moved past what is no longer pending). */
function findNext(t: RunTally, plan: Plan, progress: ReadonlyMap<string, NodeProgress>): void {
  const pending = (i: number): boolean => pendingAt(plan, progress, i);
  while (t.cursor < plan.nodes.length && !pending(t.cursor)) t.cursor++;
  t.nextServer = undefined;
  t.nextWorkers = [];
  const wantWorkers = Math.min(plan.maxUnavailable, t.workers.pending);
  for (let i = t.cursor; i < plan.nodes.length; i++) {
    if ((t.nextServer || t.servers.pending === 0) && t.nextWorkers.length >= wantWorkers) break;
    if (!pending(i)) continue;
    const n = plan.nodes[i]!;
    if (n.kind === 'server') t.nextServer ??= n;
    else if (t.nextWorkers.length < wantWorkers) t.nextWorkers.push(n);
  }
}

/**
 * The first `count` pending nodes in plan order: the nodes the run starts next
 * (servers come first in the plan and start one at a time before any worker,
 * and workers start in plan order), whatever maxUnavailable allows now.
 */
export function nextPending(t: RunTally, plan: Plan, progress: ReadonlyMap<string, NodeProgress>, count: number): PlannedNode[] {
  const out: PlannedNode[] = [];
  for (let i = t.cursor; i < plan.nodes.length && out.length < count; i++) if (pendingAt(plan, progress, i)) out.push(plan.nodes[i]!);
  return out;
}

/** Whether the plan's i-th node is in the tally's pending bucket (what findNext and nextPending walk for). */
function pendingAt(plan: Plan, progress: ReadonlyMap<string, NodeProgress>, i: number): boolean {
  return bucketOf(phaseOf(progress, plan.nodes[i]!.name)) === 'pending';
}

/** The first field in which two tallies differ (undefined: none), both values cut short for a log line. */
export function tallyDrift(a: RunTally, b: RunTally): string | undefined {
  const view = (t: RunTally): Record<string, unknown> => ({
    inFlight: t.inFlight.map((n) => n.name),
    broken: t.broken.map((n) => n.name),
    skipped: t.skipped.map((n) => n.name),
    servers: { ...t.servers, firstBroken: t.servers.firstBroken?.name },
    workers: { ...t.workers, firstBroken: t.workers.firstBroken?.name },
    pending: t.pending,
    nextServer: t.nextServer?.name,
    nextWorkers: t.nextWorkers.map((n) => n.name),
    roles: t.roles,
  });
  const x = view(a);
  const y = view(b);
  for (const k of Object.keys(x)) {
    const [p, q] = [JSON.stringify(x[k]) ?? 'none', JSON.stringify(y[k]) ?? 'none'];
    if (p !== q) return `${k} ${p.slice(0, 300)}, walked ${q.slice(0, 300)}`;
  }
  return undefined;
}
