// kstatus-compliant status for a CertificateRotation, computed from the run's
// state by pure functions.
//
// What GitOps tools need (reference/anchors.md §1.10):
// - `Reconciling=True` reads as InProgress and `Stalled=True` as Failed
//   ("abnormal-true"), so Flux and `kubectl wait` fail fast instead of timing
//   out on a doomed run; `Ready` is the summary `kubectl wait --for=condition=Ready` uses.
// - One condition per type; lastTransitionTime changes only when the status
//   does (otherwise every reconcile would look like a transition).
// - observedGeneration on every write, failure paths included, so a stale
//   generation never short-circuits a health check.

import type { Condition } from '../api/common.js';
import type { ServiceExpiry } from '../api/certificaterotation.js';
import {
  CONDITION_TYPES,
  REASONS,
  type Mode,
  type RotationPhase,
} from '../api/constants.js';
import type { NodeProgress, Plan, PlannedNode } from './plan.js';
import { tallyRun, type RunTally } from './run-tally.js';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A condition as the controller wants it; the time and generation are filled in on merge. */
export interface DesiredCondition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export interface MergeOptions {
  now: Date;
  observedGeneration: number;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** metav1.Time serialises with second precision; so do we, so a round trip compares equal. */
function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Set one condition, keyed by type. lastTransitionTime is kept when the status
 * is unchanged (reason or message changes are not transitions); other types
 * are left as they are.
 */
export function setCondition(
  existing: readonly Condition[] | undefined,
  desired: DesiredCondition,
  opts: MergeOptions,
): Condition[] {
  const list = [...(existing ?? [])];
  const index = list.findIndex((c) => c.type === desired.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: desired.type,
    status: desired.status,
    reason: desired.reason,
    message: desired.message,
    observedGeneration: opts.observedGeneration,
    lastTransitionTime:
      previous && previous.status === desired.status ? previous.lastTransitionTime : rfc3339(opts.now),
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

/**
 * Replace the whole set with `desired` (in that order), keeping transition
 * times of conditions whose status did not change. Types not in `desired` are
 * dropped, so a condition of an earlier run cannot linger.
 */
export function mergeConditions(
  existing: readonly Condition[] | undefined,
  desired: readonly DesiredCondition[],
  opts: MergeOptions,
): Condition[] {
  return desired.map((d) => setCondition(existing?.filter((c) => c.type === d.type), d, opts)[0]!);
}

/** True when two condition lists say the same thing (ignoring nothing): skip a no-op status write. */
export function conditionsEqual(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  return JSON.stringify(a ?? []) === JSON.stringify(b ?? []);
}

// ---------------------------------------------------------------------------
// Status summary of a run.

/** A node's progress as the controller knows it; adds what status.nodes cannot carry. */
export interface RunNodeProgress extends NodeProgress {
  /** NodeRotation status.step when it stopped, for the failure message. */
  step?: string;
  /** Marked Failed by the controller because it overran nodeTimeout. */
  timedOut?: boolean;
}

export interface RunState {
  generation: number;
  mode: Mode;
  paused: boolean;
  /**
   * Something only a person can fix before the run can start (a service the
   * detected distribution lacks, an undetectable distribution, no nodes).
   */
  problem?: { reason: string; message: string };
  /** Another rotation holds the cluster-wide slot. */
  queuedBehind?: string;
  /** Absent until planned. */
  plan?: Plan;
  progress: ReadonlyMap<string, RunNodeProgress>;
  /** tallyRun(plan, progress), when the caller has it already. */
  tally?: RunTally;
  /** Plan mode: how the read-only checks of the planned nodes stand (plan-mode.ts). */
  checks?: PlanChecks;
}

export interface PlanChecks {
  reported: number;
  /** All answered, or the deadline passed. */
  done: boolean;
  /** Did not answer before the deadline. */
  silent: readonly string[];
  /** The agent could not read the host. */
  failed: readonly string[];
  /** The service whose certificate expires first, where. */
  earliest?: ServiceExpiry;
}

export interface RunSummary {
  observedGeneration: number;
  phase: RotationPhase;
  /** `finished/planned`, e.g. `4/6`; absent before planning. */
  progress?: string;
  /** Nodes in flight for the printer column; absent when none. */
  current?: string;
  conditions: DesiredCondition[];
}

const MAX_CURRENT_NAMES = 3;

/** `a, b, c +2`: short enough for a printer column, honest about the rest. */
export function currentNodes(names: readonly string[]): string | undefined {
  if (names.length === 0) return undefined;
  const shown = names.slice(0, MAX_CURRENT_NAMES).join(',');
  return names.length > MAX_CURRENT_NAMES ? `${shown} +${names.length - MAX_CURRENT_NAMES}` : shown;
}

function cond(type: string, status: ConditionStatus, reason: string, message: string): DesiredCondition {
  return { type, status, reason, message };
}

/** Ready, Reconciling, Stalled in one go; exactly one of the three tells the story. */
export function kstatus(
  state: 'ready' | 'reconciling' | 'stalled' | 'stalledFinishing',
  reason: string,
  message: string,
): DesiredCondition[] {
  const { ready, reconciling, stalled } = CONDITION_TYPES;
  switch (state) {
    case 'ready':
      return [
        cond(ready, 'True', reason, message),
        cond(reconciling, 'False', REASONS.asExpected, 'nothing left to do'),
        cond(stalled, 'False', REASONS.asExpected, 'not stalled'),
      ];
    case 'reconciling':
      return [
        cond(ready, 'False', reason, message),
        cond(reconciling, 'True', reason, message),
        cond(stalled, 'False', REASONS.asExpected, 'not stalled'),
      ];
    case 'stalled':
      return [
        cond(ready, 'False', reason, message),
        cond(reconciling, 'False', reason, 'stopped; a person must act'),
        cond(stalled, 'True', reason, message),
      ];
    case 'stalledFinishing':
      // Doomed, but nodes already in flight still finish: both are true.
      return [
        cond(ready, 'False', reason, message),
        cond(reconciling, 'True', REASONS.finishingInFlight, 'waiting for the nodes in flight to finish before stopping'),
        cond(stalled, 'True', reason, message),
      ];
  }
}

function failureMessage(name: string, p: RunNodeProgress, node: PlannedNode | undefined): string {
  const what = p.timedOut ? 'timed out' : p.phase === 'RolledBack' ? 'failed and was rolled back' : 'failed';
  const at = p.step ? ` at step ${p.step}` : '';
  const role = node ? ` (${node.role})` : '';
  return `node ${name}${role} ${what}${at}${p.message ? `: ${p.message}` : ''}`;
}

function failureReason(p: RunNodeProgress): string {
  if (p.timedOut) return REASONS.nodeTimeout;
  return p.phase === 'RolledBack' ? REASONS.nodeRolledBack : REASONS.nodeFailed;
}

function cascadeConditions(t: RunTally): DesiredCondition[] {
  const servers = t.servers;
  const workers = t.workers;
  const serverFailed = servers.firstBroken;
  const servers_: DesiredCondition =
    servers.total === 0
      ? cond(CONDITION_TYPES.serversRotated, 'True', REASONS.noneInPlan, 'no etcd or control-plane node in the plan')
      : servers.done === servers.total
        ? cond(CONDITION_TYPES.serversRotated, 'True', REASONS.rotated, `${servers.total}/${servers.total} server node(s) rotated`)
        : serverFailed
          ? cond(CONDITION_TYPES.serversRotated, 'False', REASONS.failed, `server node ${serverFailed.name} did not rotate; ${servers.done}/${servers.total} rotated`)
          : cond(CONDITION_TYPES.serversRotated, 'False', servers.done > 0 || servers.updating > 0 ? REASONS.inProgress : REASONS.pending, `${servers.done}/${servers.total} server node(s) rotated`);

  const workerFailed = workers.firstBroken;
  const workers_: DesiredCondition =
    workers.total === 0
      ? cond(CONDITION_TYPES.workersRestarted, 'True', REASONS.noneInPlan, 'no worker node in the plan')
      : workers.done === workers.total
        ? cond(CONDITION_TYPES.workersRestarted, 'True', REASONS.restarted, `${workers.total}/${workers.total} worker node(s) restarted`)
        : workerFailed
          ? cond(CONDITION_TYPES.workersRestarted, 'False', REASONS.failed, `worker node ${workerFailed.name} did not restart; ${workers.done}/${workers.total} restarted`)
          : servers.done < servers.total
            ? cond(CONDITION_TYPES.workersRestarted, 'False', REASONS.pending, 'waiting for the server nodes')
            : cond(CONDITION_TYPES.workersRestarted, 'False', REASONS.inProgress, `${workers.done}/${workers.total} worker node(s) restarted`);
  return [servers_, workers_];
}

/** Phase, progress, current node(s) and the full condition set of a run. */
export function summarizeRun(state: RunState): RunSummary {
  const base = { observedGeneration: state.generation };
  if (state.problem) {
    return { ...base, phase: 'Failed', conditions: kstatus('stalled', state.problem.reason, state.problem.message) };
  }
  if (state.queuedBehind) {
    const message = `waiting for CertificateRotation ${state.queuedBehind} to finish: one rotation runs at a time`;
    return { ...base, phase: 'Pending', conditions: kstatus('reconciling', REASONS.queued, message) };
  }
  const plan = state.plan;
  if (!plan) {
    return { ...base, phase: 'Pending', conditions: kstatus('reconciling', REASONS.planning, 'planning the rotation') };
  }
  const servers = plan.nodes.filter((n) => n.kind === 'server').length;
  const total = plan.nodes.length;
  if (state.mode === 'Plan') {
    const order = `planned ${total} node(s): ${servers} server(s) one at a time, then ${total - servers} worker(s) ${plan.maxUnavailable} at a time; nothing changed`;
    const c = state.checks;
    if (!c) return { ...base, phase: 'Planned', progress: `0/${total}`, conditions: kstatus('ready', REASONS.planned, order) };
    const progress = `${c.reported}/${total}`;
    if (!c.done) {
      const message = `reading the certificates on ${total} node(s) (nothing is changed): ${c.reported}/${total} answered`;
      return { ...base, phase: 'Pending', progress, conditions: kstatus('reconciling', REASONS.planning, message) };
    }
    const parts = [order];
    if (c.earliest) parts.push(`earliest notAfter ${c.earliest.notAfter} (${c.earliest.service}${c.earliest.node ? ` on ${c.earliest.node}` : ''})`);
    if (c.failed.length > 0) parts.push(`could not read the certificates on ${currentNodes(c.failed)}`);
    if (c.silent.length > 0) parts.push(`no answer within spec.strategy.nodeTimeout from ${currentNodes(c.silent)}`);
    return { ...base, phase: 'Planned', progress, conditions: kstatus('ready', REASONS.planned, parts.join('; ')) };
  }

  const tally = state.tally ?? tallyRun(plan, state.progress);
  const finished = tally.servers.done + tally.workers.done;
  const inFlight = tally.inFlight.map((n) => n.name);
  const broken = tally.broken;
  const summary = { ...base, progress: `${finished}/${total}`, current: currentNodes(inFlight) };
  const cascade = cascadeConditions(tally);

  if (broken.length > 0) {
    const first = broken[0]!;
    const p = state.progress.get(first.name)!;
    const more = broken.length > 1 ? ` (and ${broken.length - 1} more node(s))` : '';
    const message = `${failureMessage(first.name, p, first)}${more}; ${finished}/${total} node(s) rotated, the run is stopped`;
    const stillFlying = inFlight.length > 0;
    return {
      ...summary,
      phase: stillFlying ? 'Progressing' : 'Failed',
      conditions: [...kstatus(stillFlying ? 'stalledFinishing' : 'stalled', failureReason(p), message), ...cascade],
    };
  }
  if (finished === total) {
    return {
      ...summary,
      phase: 'Succeeded',
      conditions: [...kstatus('ready', REASONS.succeeded, `rotated ${total}/${total} node(s)`), ...cascade],
    };
  }
  if (state.paused) {
    const message =
      inFlight.length > 0
        ? `paused by spec.paused at ${finished}/${total}; waiting for ${inFlight.join(', ')} to finish`
        : `paused by spec.paused at ${finished}/${total}; set spec.paused: false to continue`;
    return { ...summary, phase: 'Paused', conditions: [...kstatus('reconciling', REASONS.paused, message), ...cascade] };
  }
  const message =
    inFlight.length > 0 ? `rotating ${currentNodes(inFlight)} (${finished}/${total} done)` : `${finished}/${total} node(s) done; starting the next`;
  return { ...summary, phase: 'Progressing', conditions: [...kstatus('reconciling', REASONS.progressing, message), ...cascade] };
}
