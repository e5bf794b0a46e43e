// The run as the last written pass left it, kept between passes so that a
// pass costs what changed rather than the fleet.
//
// Rebuilding a run from what is durable (run-state.ts rebuildRun: the status,
// every NodeRotation and the Node cache) is linear in the fleet, and a run has
// about one pass per hand-off: at 5,000 nodes that made a run quadratic (20 ms
// a pass). The rebuild stays the definition of the run's state; this index is
// a copy of its result that a pass may use instead while nothing it was built
// from has changed except what the pass itself looks at:
// - the rotation is exactly the object our last pass wrote (same
//   resourceVersion: nobody else changed its spec or status since);
// - the Node cache selects the same nodes with the same roles (compared object
//   by object; a kubelet heartbeat replaces a Node object but changes none of
//   what planning reads);
// - the nodes in flight are read from their own NodeRotations every pass.
// What it cannot see cheaply, a NodeRotation of a finished node deleted by
// hand, a full rebuild every `fullEveryMs` catches: it is compared with the
// index, a difference is logged and the rebuild wins. In unit tests every pass
// rebuilds and compares (`verify`), so every scenario the controller's tests
// drive checks the index against the rebuild.
import type { V1Node } from '@kubernetes/client-node';
import type { CertificateRotation, CertificateRotationSpec, CertificateRotationStatus, NodeStatus, RunSpec } from '../api/certificaterotation.js';
import { nodeRotationName } from '../api/names.js';
import type { NodeRotation } from '../api/noderotation.js';
import type { Distribution } from '../distributions/services.js';
import type { RunNodeProgress } from './conditions.js';
import type { Plan } from './plan.js';
import type { CascadeDecision } from './cascade.js';
import type { ControllerDeps } from './deps.js';
import { compactRun, countRun, planFromStatus, progressFromStatus, rebuildRun } from './run-state.js';
import { tallyDrift, tallyRun, type RunTally } from './run-tally.js';

/** What a pass decides from: every node of the run in plan order, the plan, and each node's progress. */
export interface RunBasis {
  entries: readonly NodeStatus[];
  plan: Plan;
  progress: ReadonlyMap<string, RunNodeProgress>;
  /** Index of each node in `entries`. */
  position: ReadonlyMap<string, number>;
  /** tallyRun(plan, progress), moved along with the entries. */
  tally: RunTally;
  /** Node name → its NodeRotation's name in this run, as computed (a hash each). */
  nodeRotationNames: Map<string, string>;
}

/** The basis of a run rebuilt in full (rebuildRun's entries). */
export function basisOf(distribution: Distribution, spec: CertificateRotationSpec, entries: readonly NodeStatus[]): RunBasis {
  const plan = planFromStatus(distribution, spec, entries);
  const progress = progressFromStatus(entries);
  return { entries, plan, progress, position: new Map(entries.map((e, i) => [e.name, i])), tally: tallyRun(plan, progress), nodeRotationNames: new Map() };
}

/**
 * Whether two bases describe the same run: the same nodes in the same order
 * with the same role and phase, and the same entry for every node that
 * status.nodes lists (in flight or stopped). Rotated and Pending entries carry
 * times that no decision reads and that the two sources spell differently
 * (the agent's report, or the time the controller took it in).
 */
export function sameRun(a: RunBasis, b: RunBasis): string | undefined {
  if (a.entries.length !== b.entries.length) return `${a.entries.length} nodes, rebuilt ${b.entries.length}`;
  for (let i = 0; i < a.entries.length; i++) {
    const x = a.entries[i]!;
    const y = b.entries[i]!;
    if (x.name !== y.name || x.role !== y.role || x.phase !== y.phase) return `node ${i}: ${x.name} (${x.role}) ${x.phase}, rebuilt ${y.name} (${y.role}) ${y.phase}`;
    if (x.phase === 'Rotated' || x.phase === 'Pending') continue;
    if (!sameFields(x, y)) return `node ${x.name}: ${JSON.stringify(x)}, rebuilt ${JSON.stringify(y)}`;
  }
  if (a.plan.maxUnavailable !== b.plan.maxUnavailable) return `maxUnavailable ${a.plan.maxUnavailable}, rebuilt ${b.plan.maxUnavailable}`;
  const tally = tallyDrift(a.tally, b.tally);
  return tally === undefined ? undefined : `tally ${tally}`;
}

/** Field by field (the entries' fields are strings); an absent field and an undefined one are the same. */
function sameFields(x: NodeStatus, y: NodeStatus): boolean {
  const a = x as unknown as Record<string, unknown>;
  const b = y as unknown as Record<string, unknown>;
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if (a[k] !== b[k]) return false;
  return true;
}

/**
 * What a pass derived from its moved tally, against the same derived by
 * walking every entry: the tally itself, status.counts and status.nodes.
 * Undefined when they agree. Run on every pass in verify mode (unit tests).
 */
export function passDrift(d: { plan: Plan; nodes: readonly NodeStatus[]; progress: ReadonlyMap<string, RunNodeProgress>; tally: RunTally }, listed: readonly NodeStatus[]): string | undefined {
  const tally = tallyDrift(d.tally, tallyRun(d.plan, d.progress));
  if (tally !== undefined) return `tally ${tally}`;
  const counts = [JSON.stringify(d.tally.roles), JSON.stringify(countRun(d.nodes))];
  if (counts[0] !== counts[1]) return `counts ${counts[0]}, walked ${counts[1]}`;
  const nodes = [JSON.stringify(compactRun(listed)), JSON.stringify(compactRun(d.nodes))];
  if (nodes[0] !== nodes[1]) return `status.nodes ${nodes[0]}, walked ${nodes[1]}`;
  return undefined;
}

export interface RunIndexOptions {
  /** Rebuild and compare on every pass; a difference throws (unit tests). */
  verify?: boolean;
  /** Rebuild at least this often and compare (production: a difference is logged, the rebuild used). */
  fullEveryMs?: number;
  /** How long a pass may leave its status write to a later one (status-hold.ts); 0, the default, writes on every pass. */
  statusHoldMs?: number;
}

interface Kept {
  /** The run: runGeneration and startedAt. */
  run: string;
  resourceVersion: string;
  nodes: readonly V1Node[];
  rebuiltAt: number;
  /** When this process wrote the status of `resourceVersion` (or found it already said what it would write). */
  writtenAt: number;
  basis: RunBasis;
}

export class RunIndex {
  private readonly kept = new Map<string, Kept>();
  readonly verify: boolean;
  private readonly fullEveryMs: number;
  readonly statusHoldMs: number;

  constructor(opts: RunIndexOptions = {}) {
    this.verify = opts.verify ?? false;
    this.fullEveryMs = opts.fullEveryMs ?? 10_000;
    this.statusHoldMs = opts.statusHoldMs ?? 0;
  }

  /**
   * The basis kept for this rotation's run, if it still stands for what a
   * rebuild would give; else undefined (rebuild). `due` says a rebuild is owed
   * for comparison even though the basis is returned.
   */
  lookup(rotation: string, run: string, resourceVersion: string | undefined, nodes: readonly V1Node[], nowMs: number): { basis: RunBasis; due: boolean; rebuiltAt: number; writtenAt: number } | undefined {
    const k = this.kept.get(rotation);
    if (!k || k.run !== run || resourceVersion === undefined || k.resourceVersion !== resourceVersion) return undefined;
    // The same array: the Node cache has not changed since (ClusterReader.nodes).
    if (k.nodes !== nodes && !samePlannerNodes(k.nodes, nodes)) return undefined;
    return { basis: k.basis, due: this.verify || nowMs - k.rebuiltAt >= this.fullEveryMs, rebuiltAt: k.rebuiltAt, writtenAt: k.writtenAt };
  }

  /** Keeps what a written pass decided; `rebuiltAt` is when its basis was last rebuilt in full, `writtenAt` when its status was written. */
  keep(rotation: string, run: string, resourceVersion: string | undefined, nodes: readonly V1Node[], basis: RunBasis, rebuiltAt: number, writtenAt: number): void {
    if (resourceVersion === undefined) return void this.kept.delete(rotation);
    this.kept.set(rotation, { run, resourceVersion, nodes, rebuiltAt, writtenAt, basis });
  }

  /**
   * A rebuild just agreed with the basis kept for `resourceVersion`: the next
   * comparison is owed `fullEveryMs` from now. A held pass (status-hold.ts)
   * keeps nothing, so without this every held pass after the due time would
   * rebuild again until the next write: at 5,000 nodes several rebuilds of
   * tens of milliseconds each, back to back, on the hand-off path.
   */
  rebuilt(rotation: string, resourceVersion: string | undefined, nowMs: number): void {
    const k = this.kept.get(rotation);
    if (k && resourceVersion !== undefined && k.resourceVersion === resourceVersion) k.rebuiltAt = nowMs;
  }

  forget(rotation: string): void {
    this.kept.delete(rotation);
  }
}

/**
 * The basis as a pass leaves it: its entries, with the progress of the nodes
 * it changed folded into the kept map (the pass's own view was an overlay, so
 * nothing kept changes before the write that makes it true).
 */
export function advanceBasis(prev: RunBasis, entries: readonly NodeStatus[], progress: ProgressOverlay, tally: RunTally): RunBasis {
  const merged = prev.progress as Map<string, RunNodeProgress>;
  for (const [name, p] of progress.changes) merged.set(name, p);
  return { ...prev, entries, progress: merged, tally };
}

/**
 * A progress map that reads through to a kept one and records its own
 * changes apart, so a pass that is refused (409) leaves the kept one as it was.
 */
export class ProgressOverlay implements ReadonlyMap<string, RunNodeProgress> {
  readonly changes = new Map<string, RunNodeProgress>();

  constructor(private readonly base: ReadonlyMap<string, RunNodeProgress>) {}

  get(name: string): RunNodeProgress | undefined {
    // Read once per node per walk over the plan: skip the empty overlay.
    if (this.changes.size === 0) return this.base.get(name);
    return this.changes.get(name) ?? this.base.get(name);
  }

  has(name: string): boolean {
    return this.changes.has(name) || this.base.has(name);
  }

  set(name: string, p: RunNodeProgress): this {
    this.changes.set(name, p);
    return this;
  }

  get size(): number {
    let extra = 0;
    for (const k of this.changes.keys()) if (!this.base.has(k)) extra++;
    return this.base.size + extra;
  }

  *entries(): MapIterator<[string, RunNodeProgress]> {
    for (const [k, v] of this.base) yield [k, this.changes.get(k) ?? v];
    for (const [k, v] of this.changes) if (!this.base.has(k)) yield [k, v];
  }

  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<RunNodeProgress> {
    for (const [, v] of this.entries()) yield v;
  }

  forEach(f: (value: RunNodeProgress, key: string, map: ReadonlyMap<string, RunNodeProgress>) => void): void {
    for (const [k, v] of this.entries()) f(v, k, this);
  }

  [Symbol.iterator](): MapIterator<[string, RunNodeProgress]> {
    return this.entries();
  }
}

const sameRecord = (a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean => {
  if (a === b) return true;
  const ka = Object.keys(a ?? {});
  if (ka.length !== Object.keys(b ?? {}).length) return false;
  return ka.every((k) => a![k] === b?.[k]);
};

/** Whether two Node objects are the same for planning (name, creation, labels, annotations, kubelet version). */
function samePlannerFacts(a: V1Node, b: V1Node): boolean {
  const ma = a.metadata ?? {};
  const mb = b.metadata ?? {};
  return (
    ma.name === mb.name &&
    String(ma.creationTimestamp) === String(mb.creationTimestamp) &&
    a.status?.nodeInfo?.kubeletVersion === b.status?.nodeInfo?.kubeletVersion &&
    sameRecord(ma.labels, mb.labels) &&
    sameRecord(ma.annotations, mb.annotations)
  );
}

/** The same Nodes, in the same order, each the same object or the same for planning. */
export function samePlannerNodes(before: readonly V1Node[], now: readonly V1Node[]): boolean {
  if (before.length !== now.length) return false;
  for (let i = 0; i < now.length; i++) {
    if (before[i] !== now[i] && !samePlannerFacts(before[i]!, now[i]!)) return false;
  }
  return true;
}

// --- used by a pass (reconcile-rotation.ts continueRun) ---------------------

/**
 * The entries status.nodes may list (in flight, stopped, skipped), in plan
 * order: compactRun keeps no other, and at 5,000 nodes the rest is most of them.
 */
export function listedEntries(d: CascadeDecision): NodeStatus[] {
  return [...d.tally.inFlight, ...d.tally.broken, ...d.tally.skipped]
    .map((n) => d.position.get(n.name)!)
    .sort((x, y) => x - y)
    .map((i) => d.nodes[i]!);
}

/** The NodeRotations of this rotation's run `runGeneration`, from the cache. */
export function runNodeRotations(deps: ControllerDeps, name: string, runGeneration: number): NodeRotation[] {
  return deps.read.nodeRotationsOf(name).filter((nr) => nr.spec.generation === runGeneration && nr.spec.rotation === name);
}

export interface PassBasis {
  basis: RunBasis;
  /** Whether `basis` was kept from the previous pass (else rebuilt now). */
  kept: boolean;
  /** The run's NodeRotations: all of them when rebuilt, those of the nodes in flight when kept. */
  nodeRotations: NodeRotation[];
  /** The run's key in the index, the Node cache it was built against, and when it was last rebuilt. */
  run: string;
  nodes: readonly V1Node[];
  rebuiltAt: number;
  /** When this process wrote the status the pass decides from (status-hold.ts); undefined when not known. */
  writtenAt?: number;
}

/**
 * The run as this pass decides from it: kept from the previous pass when
 * nothing it stands on changed (run-index.ts), else rebuilt from the status,
 * the Node cache and the NodeRotations. A kept basis is checked against a
 * rebuild now and then; a difference is logged and the rebuild wins.
 */
export function runBasisFor(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  base: CertificateRotationStatus,
  run: CertificateRotation,
  runSpec: RunSpec,
  /** status.startedAt of the run (now, for the pass that starts it). */
  startedAt: string,
  starting: boolean,
): PassBasis {
  const name = rotation.metadata.name!;
  const runGeneration = base.runGeneration!;
  const distribution = base.distribution!;
  const now = deps.now().getTime();
  const key = `${runGeneration}/${startedAt}`;
  const nodes = deps.read.nodes();
  const found = starting ? undefined : deps.runs?.lookup(name, key, rotation.metadata.resourceVersion, nodes, now);
  const nameOf = (basis: RunBasis, node: string): string => {
    let nr = basis.nodeRotationNames.get(node);
    if (nr === undefined) basis.nodeRotationNames.set(node, (nr = nodeRotationName(name, runGeneration, node)));
    return nr;
  };
  // A kept pass reads the NodeRotations of the nodes in flight (their reports) and of the nodes named next (a create whose status write was lost: cascade.ts adopts it).
  const watched = (basis: RunBasis): NodeRotation[] =>
    [...basis.tally.inFlight.map((n) => n.name), ...(base.nextNodes ?? [])]
      .map((node) => deps.read.nodeRotation(nameOf(basis, node)))
      .filter((nr): nr is NodeRotation => nr !== undefined && nr.spec.generation === runGeneration && nr.spec.rotation === name);
  const kept = (basis: RunBasis, rebuiltAt: number): PassBasis => ({ basis, kept: true, nodeRotations: watched(basis), run: key, nodes, rebuiltAt, writtenAt: found?.writtenAt });
  if (found && !found.due) return kept(found.basis, found.rebuiltAt);

  const nodeRotations = runNodeRotations(deps, name, runGeneration);
  const entries = rebuildRun({ distribution, runSpec, startedAt, recorded: base.nodes ?? [], nodes, nodeRotations, next: base.nextNodes });
  const rebuilt = basisOf(distribution, run.spec, entries);
  if (found) {
    const drift = sameRun(found.basis, rebuilt);
    if (drift === undefined) {
      deps.runs!.rebuilt(name, rotation.metadata.resourceVersion, now);
      return kept(found.basis, now);
    }
    if (deps.runs!.verify) throw new Error(`the kept run of ${name} differs from its rebuild: ${drift}`);
    deps.log.warn({ drift }, 'the kept run differs from its rebuild; using the rebuild');
    // Nothing of the drifted run is used again, and the status built from it is corrected now (no hold after it).
    deps.runs!.forget(name);
  }
  return { basis: rebuilt, kept: false, nodeRotations, run: key, nodes, rebuiltAt: now };
}
