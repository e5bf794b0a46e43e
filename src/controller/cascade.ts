// One step of the cascade, as a pure function of the run's state (every node
// with its phase, as run-state.ts rebuilds it from status.nodes, the Node
// cache and the NodeRotations), the NodeRotations the agents report on, and
// the clock.
//
// The caller applies the decision in this order, and that order is the
// crash-safety argument: no NodeRotation is created before a status write,
// fenced by resourceVersion, has recorded that its node may start.
//   1. a node that status already records (in flight, or in status.nextNodes,
//      the next few in plan order) is created at once, when the rules free
//      its slot: its intent was written by an earlier pass;
//   2. write status (fenced): finished nodes, the nodes started now, and the
//      next few nodes (nextNodes), in ONE write;
//   3. only then create the started nodes that 1 could not.
// A pass that has nothing for 3 and changes only bookkeeping may stop after 1
// and leave 2 to a later pass (status-hold.ts): that pass decides from the
// same written status, re-reads the same reports, adopts what 1 created, and
// writes it all at once. Every step of the argument below holds unchanged: a
// held pass creates only nodes named next, in plan order, into slots reports
// freed.
// A crash after 2 leaves a node Updating without a NodeRotation: the next pass
// sees exactly that and creates it (same deterministic name). A crash before
// 2 leaves at most nodes of 1 created and still Pending in status: the next
// pass adopts them (a NodeRotation of a node in nextNodes means it started).
// A pass on a stale cache decides from old status and its write is refused
// (409); what it created in 1 was already recorded as next, and started only
// after the report that freed its slot, which every watcher of NodeRotations
// sees first (one resource, one order of events). So two passes can never
// both start a server, nor more than maxUnavailable workers.
import type { CertificateRotation, NodeStatus } from '../api/certificaterotation.js';
import { NEXT_NODES, REASONS } from '../api/constants.js';
import { runID } from '../api/names.js';
import { parseDuration } from '../api/duration.js';
import type { FileReport, NodeRotation } from '../api/noderotation.js';
import type { Distribution } from '../distributions/services.js';
import { EVENT_REASONS } from './event-reasons.js';
import { buildNodeRotation } from './node-rotation.js';
import { nextStep, type Plan } from './plan.js';
import { basisOf, ProgressOverlay, type RunBasis } from './run-index.js';
import { copyTally, moveNode, nextPending, type RunTally } from './run-tally.js';
import { FINISHED_BY_AGENT, progressOf, reportIsCurrent } from './run-state.js';

export interface CascadeInput {
  rotation: CertificateRotation;
  distribution: Distribution;
  runGeneration: number;
  /** Every node of the run with its phase, in plan order (rebuildRun). */
  nodes: readonly NodeStatus[];
  /** The NodeRotations of this run (spec.generation === runGeneration); those of the nodes in flight suffice. */
  nodeRotations: readonly NodeRotation[];
  now: Date;
  /** Whether the Node still exists (the Node cache); every node does when absent. */
  nodeExists?: (name: string) => boolean;
  /**
   * `nodes` with its plan and progress, kept from the previous pass
   * (run-index.ts); built from `nodes` when absent.
   */
  basis?: RunBasis;
  /** status.nextNodes of the status this pass decides from: recorded as next, so they may be created before this pass's write. */
  reserved?: readonly string[];
}

export interface NodeEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /**
   * Routine node events of one pass that share `key` become ONE Event: at
   * maxUnavailable 50 a pass starts or finishes dozens of workers, and an
   * Event per node was half of the run's API writes (client-go's recorder
   * would drop them anyway: its spam filter allows a burst of 25 per object).
   * Failures are never combined.
   */
  combine?: { key: string; head: (count: number) => string; item: string };
  /**
   * A worker's routine start or finish: a sink may gather these over a few
   * seconds, across passes (event-window.ts). After combineEvents, `parts`
   * holds the events a combined one was made of.
   */
  window?: boolean;
  parts?: readonly NodeEvent[];
}

export interface FinishedNode {
  name: string;
  phase: string;
  durationSeconds: number;
  files: readonly FileReport[];
}

export interface CascadeDecision {
  plan: Plan;
  nodes: NodeStatus[];
  /** `nodes` as the progress map summarizeRun takes: the basis's, with this pass's changes apart. */
  progress: ProgressOverlay;
  /** tallyRun(plan, progress), moved along with this pass's changes. */
  tally: RunTally;
  /** Index of each node in `nodes` (and in `plan.nodes`). */
  position: ReadonlyMap<string, number>;
  /** NodeRotations to create AFTER the status write succeeded. */
  create: NodeRotation[];
  /** NodeRotations whose intent the status this pass read already records (in flight, or in nextNodes): created BEFORE the write. */
  createFirst: NodeRotation[];
  /** status.nextNodes after this pass: the next NEXT_NODES pending nodes in plan order. */
  next: string[];
  events: NodeEvent[];
  finished: FinishedNode[];
  /** Come back by then even if nothing reports (the earliest node deadline). */
  requeueAfterMs?: number;
}

const MAX_MESSAGE = 1024;

/** metav1.Time has second precision; writing the same so a round trip compares equal. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function clip(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 3)}...` : text;
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function decideCascade(input: CascadeInput): CascadeDecision {
  const { rotation, distribution, runGeneration, now } = input;
  const spec = rotation.spec;
  const nodeTimeoutMs = parseDuration(spec.strategy.nodeTimeout);
  const basis = input.basis ?? basisOf(distribution, spec, input.nodes);
  const plan = basis.plan;
  // The plan lists the entries' nodes in the entries' order (planFromStatus).
  const planned = { get: (name: string) => plan.nodes[basis.position.get(name)!] };
  // Copied on first change only: at 5,000 nodes most entries are Rotated or
  // Pending and stay as they are, and copying all of them on every pass was a
  // tenth of the controller's CPU.
  const entries = [...input.nodes];
  const index = basis.position;
  const progress = new ProgressOverlay(basis.progress);
  const own = (e: NodeStatus): NodeStatus => {
    const i = index.get(e.name)!;
    if (entries[i] !== input.nodes[i]) return entries[i]!;
    return (entries[i] = { ...e });
  };
  /** Changes a node's entry (a copy, made first) and its progress; returns the changed entry. */
  const tally = copyTally(basis.tally);
  const change = (e: NodeStatus, f: (mine: NodeStatus) => void): NodeStatus => {
    const mine = own(e);
    const from = mine.phase; // this pass may have changed it already (an adopted node that finished)
    f(mine);
    progress.set(mine.name, progressOf(mine));
    moveNode(tally, plan, index, progress, mine.name, from, mine.phase);
    return mine;
  };
  const byName = { get: (name: string) => entries[index.get(name)!] };
  const reports = new Map(input.nodeRotations.map((nr) => [nr.spec.nodeName, nr]));
  const decision: CascadeDecision = { plan, nodes: entries, progress, tally, position: index, create: [], createFirst: [], next: [], events: [], finished: [] };
  const nowText = rfc3339(now);
  // Intent the status already records: the nodes it has in flight and the ones it names as next.
  const reserved = new Set(input.reserved ?? []);
  const intentRecorded = (name: string): boolean => reserved.has(name) || input.nodes[index.get(name)!]?.phase === 'Updating';
  const toCreate = (nr: NodeRotation): void => void (intentRecorded(nr.spec.nodeName) ? decision.createFirst : decision.create).push(nr);

  // 0. A node named next whose NodeRotation exists has started: a pass created it
  //    (step 1 of the caller's order) and then lost its status write (a 409, a
  //    crash). Recorded as in flight so that it holds its slot and its report is taken.
  const thisRun = runID(rotation.metadata.uid!, runGeneration);
  for (const name of reserved) {
    const nr = reports.get(name);
    const e = index.has(name) ? byName.get(name) : undefined;
    // (Of this very run: a rotation deleted and made again under its name starts at generation 1 too.)
    if (!nr || nr.spec.runID !== thisRun || e?.phase !== 'Pending') continue;
    const created = Date.parse(String(nr.metadata.creationTimestamp ?? ''));
    change(e, (mine) => {
      mine.phase = 'Updating';
      mine.startedAt = Number.isNaN(created) ? nowText : rfc3339(new Date(created));
    });
    decision.events.push(startedEvent(planned.get(name)!));
  }

  // 1. Take in what the agents reported for the nodes in flight.
  // The nodes in flight, as the pass found them (the tally changes as they finish).
  for (const recorded of tally.inFlight.map((n) => input.nodes[index.get(n.name)!]!)) {
    const nr = reports.get(recorded.name);
    if (!nr) {
      // Intent recorded, object missing: we crashed (or someone deleted it) between the two writes.
      toCreate(buildNodeRotation(rotation, runGeneration, distribution, planned.get(recorded.name)!));
      continue;
    }
    const st = nr.status;
    if (!st || !FINISHED_BY_AGENT.includes(st.phase)) continue;
    if (!reportIsCurrent(nr)) continue; // a report about another run: not ours to take
    // A rotated node's entry is name, role, phase and times only (and
    // compactRun drops it from status.nodes): its message and files stay on its
    // NodeRotation. A node that failed keeps its message and step here: that is
    // what a person reads first.
    const finishedAt = st.finishedAt && !Number.isNaN(Date.parse(st.finishedAt)) ? rfc3339(new Date(st.finishedAt)) : nowText;
    const e = change(recorded, (mine) => {
      if (st.phase === 'Rotated') Object.assign(mine, { phase: st.phase, finishedAt });
      else Object.assign(mine, withoutUndefined({ phase: st.phase, finishedAt, message: clip(st.message), step: st.step }));
      delete mine.reason;
    });
    const seconds = e.startedAt ? Math.max(0, (Date.parse(e.finishedAt!) - Date.parse(e.startedAt)) / 1000) : 0;
    decision.finished.push({ name: e.name, phase: st.phase, durationSeconds: seconds, files: st.files ?? [] });
    const at = st.step ? ` at step ${st.step}` : '';
    const why = st.message ? `: ${st.message}` : '';
    if (st.phase === 'Rotated') {
      decision.events.push({
        type: 'Normal',
        reason: EVENT_REASONS.nodeRotated,
        message: `node ${e.name} (${e.role}) rotated in ${Math.round(seconds)}s`,
        combine: { key: e.role, head: (count) => `${count} ${e.role} nodes rotated: `, item: `${e.name} in ${Math.round(seconds)}s` },
        window: planned.get(e.name)?.kind === 'worker',
      });
    } else if (st.phase === 'RolledBack') {
      decision.events.push({ type: 'Warning', reason: EVENT_REASONS.nodeRolledBack, message: `node ${e.name} (${e.role}) failed${at} and was rolled back${why}` });
    } else {
      decision.events.push({ type: 'Warning', reason: EVENT_REASONS.nodeFailed, message: `node ${e.name} (${e.role}) failed${at}${why}` });
    }
  }

  // 1b. Nodes whose Node object is gone (deleted, scaled down): skipped, before they
  //     start or while in flight, so the run goes on and the slot is not held by
  //     a node that will never report. Its agent went with it; a node that comes
  //     back under the same name is rotated by the next run.
  //     Without nodeExists every node exists (a kept run's Nodes are the ones its last pass checked).
  const exists = input.nodeExists;
  for (const current of exists ? entries : []) {
    if ((current.phase !== 'Pending' && current.phase !== 'Updating') || exists!(current.name)) continue;
    const inFlight = current.phase === 'Updating';
    const e = change(current, (mine) => {
      Object.assign(mine, {
        phase: 'Skipped',
        reason: REASONS.nodeDeleted,
        finishedAt: nowText,
        message: inFlight ? 'the Node was deleted while it was being rotated; its result is not awaited' : 'the Node was deleted before it was started',
      });
      delete mine.step;
    });
    decision.finished.push({ name: e.name, phase: 'Skipped', durationSeconds: 0, files: [] });
    decision.events.push({
      type: 'Warning',
      reason: EVENT_REASONS.nodeSkipped,
      message: `node ${e.name} (${e.role}) skipped: ${e.message}`,
    });
  }

  const cascadeInput = () => ({
    plan,
    progress,
    paused: spec.paused,
    onFailure: spec.strategy.onFailure,
    nodeTimeoutMs,
    now,
  });
  let step = nextStep(cascadeInput(), tally);

  // 2. Nodes that overran nodeTimeout have failed: recorded so the run stops and says which and where.
  if (step.kind === 'timedOut') {
    for (const name of step.nodes) {
      const lastStep = reports.get(name)?.status?.step;
      const e = change(byName.get(name)!, (mine) => {
        mine.phase = 'Failed';
        mine.reason = REASONS.nodeTimeout;
        mine.finishedAt = nowText;
        mine.message = `no result within spec.strategy.nodeTimeout (${spec.strategy.nodeTimeout})${lastStep ? `; last reported step ${lastStep}` : '; the agent never reported'}`;
        if (lastStep) mine.step = lastStep;
      });
      decision.finished.push({ name, phase: 'Failed', durationSeconds: nodeTimeoutMs / 1000, files: [] });
      decision.events.push({
        type: 'Warning',
        reason: EVENT_REASONS.nodeTimedOut,
        message: `node ${name} (${e.role}) timed out after ${spec.strategy.nodeTimeout}${lastStep ? ` at step ${lastStep}` : ''}`,
      });
    }
    step = nextStep(cascadeInput(), tally);
  }

  // 3. Start what the rules allow: record intent here; the caller creates after writing it.
  if (step.kind === 'start') {
    for (const node of step.nodes) {
      change(byName.get(node.name)!, (mine) => {
        mine.phase = 'Updating';
        mine.startedAt = nowText;
        delete mine.finishedAt;
        delete mine.message;
        delete mine.step;
        delete mine.reason;
      });
      toCreate(buildNodeRotation(rotation, runGeneration, distribution, node));
      decision.events.push(startedEvent(node));
    }
  }
  decision.next = nextPending(tally, plan, progress, NEXT_NODES).map((n) => n.name);

  // 4. Wake up at the earliest deadline of a node in flight (+1 s: startedAt has second precision).
  const deadlines = tally.inFlight
    .map((n) => entries[index.get(n.name)!]!)
    .filter((e) => e.startedAt)
    .map((e) => Date.parse(e.startedAt!) + nodeTimeoutMs - now.getTime() + 1000);
  if (deadlines.length > 0) decision.requeueAfterMs = Math.max(1000, Math.min(...deadlines));
  decision.events = combineEvents(decision.events);
  return decision;
}

function startedEvent(node: Plan['nodes'][number]): NodeEvent {
  return {
    type: 'Normal',
    reason: EVENT_REASONS.nodeStarted,
    message: `rotating node ${node.name} (${node.role}): ${node.services.join(', ')}`,
    window: node.kind === 'worker',
    combine: {
      key: `${node.role}: ${node.services.join(', ')}`,
      head: (count) => `rotating ${count} ${node.role} nodes (${node.services.join(', ')}): `,
      item: node.name,
    },
  };
}

/** One Event per reason and `combine.key` (in first-seen order); a group of one keeps its own message. */
export function combineEvents(events: readonly NodeEvent[]): NodeEvent[] {
  const groups = new Map<string, NodeEvent[]>();
  const out: (NodeEvent | NodeEvent[])[] = [];
  for (const e of events) {
    if (!e.combine) {
      out.push(e);
      continue;
    }
    const k = `${e.reason}\u0000${e.combine.key}`;
    let g = groups.get(k);
    if (!g) {
      g = [];
      groups.set(k, g);
      out.push(g);
    }
    g.push(e);
  }
  return out.map((g) => {
    if (!Array.isArray(g)) return g;
    const first = g[0]!;
    const message = g.length === 1 ? first.message : listMessage(first.combine!.head(g.length), g.map((e) => e.combine!.item));
    return { type: first.type, reason: first.reason, message, ...(first.window ? { window: true, parts: g } : {}) };
  });
}

/** `head` + as many items as fit in MAX_MESSAGE, comma separated, then "and N more". */
function listMessage(head: string, items: readonly string[]): string {
  const shown: string[] = [];
  for (const [i, item] of items.entries()) {
    const more = items.length - i - 1;
    if (`${head}${[...shown, item].join(', ')}${more > 0 ? ` and ${more} more` : ''}`.length > MAX_MESSAGE) break;
    shown.push(item);
  }
  const hidden = items.length - shown.length;
  return `${head}${shown.join(', ')}${hidden > 0 ? ` and ${hidden} more` : ''}`;
}
