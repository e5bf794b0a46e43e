// The sync function of the CertificateRotation controller (sample-controller
// shape): read everything from the cache, do the NEXT step only, return.
// It is level-based: nothing depends on which event woke it, so a pass after
// a crash, a lost watch event or a leader change decides the same thing.
//
// The checklist, top to bottom, each step an early return:
//   1. gone                    → nothing (NodeRotations left with it)
//   2. being deleted           → finalizer: wait for the node in flight, clean up
//   3. no finalizer yet        → add it (Apply mode)
//   4. a run in progress       → continue it (the cascade, or the Secrets run), whatever else changed
//      a plan in progress      → take in its checks (plan-mode.ts)
//   5. this generation settled → nothing
//   6. scope Secrets           → Plan: discover and publish status.secretPlan (secrets/plan-secrets.ts);
//                                Apply: one rotation at a time, then renew in place (secrets/run-secrets.ts)
//      distribution            → spec, or detected from the Nodes; else Stalled
//   7. plan                    → select/order nodes; else Stalled
//   8. mode Plan               → publish the plan, ask every node for a read-only check
//   9. another rotation runs   → Queued
//  10. start the run           → record what it rotates (runSpec), first node in the same write
import { nodeScope, type CertificateRotation, type CertificateRotationStatus } from '../api/certificaterotation.js';
import { MAX_PLANNED_NODES, REASONS } from '../api/constants.js';
import type { ReconcileResult } from '../kube/workqueue.js';
import { decideCascade, rfc3339 } from './cascade.js';
import { mergeConditions, summarizeRun, type RunState } from './conditions.js';
import type { ControllerDeps } from './deps.js';
import { detectDistribution } from './detect.js';
import { EVENT_REASONS } from './event-reasons.js';
import { addFinalizer, finalizeRotation, hasFinalizer } from './finalizer.js';
import { planRotation } from './plan.js';
import { collectChecks, earliestByService, planStatus } from './plan-mode.js';
import { buildNodeRotation } from './node-rotation.js';
import { parseDuration } from '../api/duration.js';
import { slotHolder } from './queue-gate.js';
import { clearSealedBundles, commitRkeState, discardRkeBundle, ensureRkeBundle, failedRunStateNote, isPermanentIssueError, sealBundleForWaitingNodes, withBundleRef } from './rke-run.js';
import { compactRun, describePlan, FINISHED_BY_AGENT, planFromStatus, observedGenerationOf, planInProgress, runActive, runFingerprint, runSpecOf, settled } from './run-state.js';
import { FORBIDDEN_RETRY_MS, planSecretTargets } from './secrets/plan-secrets.js';
import { continueSecretRun, secretRunActive, startSecretRun, targetInFlight } from './secrets/run-secrets.js';
import { holdVerdict } from './status-hold.js';
import { writeStatus } from './status-writer.js';
import { advanceBasis, listedEntries, passDrift, runBasisFor, runNodeRotations } from './run-index.js';

/**
 * How many NodeRotations to create at once after one status write. A whole
 * worker batch (maxUnavailable) goes out together: the next hand-off waits for
 * this pass, so sequential creates would add up on the hand-off latency.
 */
const CREATE_CONCURRENCY = 64;

export async function reconcileRotation(deps: ControllerDeps, name: string): Promise<ReconcileResult | void> {
  let rotation = deps.read.rotation(name);
  // 1. Gone: the finalizer already removed its NodeRotations.
  if (!rotation) return;

  // 2. Being deleted: never start anything; wait for the node (or Secret) in flight, clean up, release.
  if (rotation.metadata.deletionTimestamp) {
    if (targetInFlight(rotation.status)) return continueSecretRun(deps, rotation, rotation.status!, true);
    return finalizeRotation(deps, rotation);
  }

  // 3. An Apply rotation may create NodeRotations: hold a finalizer before the first one exists.
  if (rotation.spec.mode === 'Apply' && !hasFinalizer(rotation)) rotation = await addFinalizer(deps, rotation);

  const status: CertificateRotationStatus = rotation.status ?? { observedGeneration: -1 };
  // 4. A started run continues first: a spec change mid-run steers it (paused,
  //    strategy) or waits for it to end (what to rotate), never forks a second run.
  if (secretRunActive(status)) return continueSecretRun(deps, rotation, status);
  if (runActive(status)) return continueRun(deps, rotation, status, false);
  if (planInProgress(rotation)) return continuePlan(deps, rotation, status);

  // 5. This generation's run (or plan) is over and the spec has not changed since.
  if (settled(rotation)) return;

  const generation = rotation.metadata.generation!;
  const spec = rotation.spec;
  // 6'. Secret-backed serving certificates: discovered, planned and renewed by the controller itself.
  if (spec.scope === 'Secrets') {
    if (spec.mode === 'Apply') {
      const holder = slotHolderFor(deps, rotation);
      if (holder) return writeQueued(deps, rotation, holder, undefined);
    }
    const outcome = spec.mode === 'Plan' ? await planSecretTargets(deps, rotation) : await startSecretRun(deps, rotation);
    if (!outcome || !('reason' in outcome)) return outcome;
    await writeProblem(deps, rotation, outcome);
    // Forbidden may be mended by RBAC at any time; anything else waits for a new generation.
    return outcome.reason === REASONS.discoveryForbidden ? { requeueAfterMs: FORBIDDEN_RETRY_MS } : undefined;
  }
  const nodes = deps.read.nodes();

  // 6. The distribution: as the spec says, or as the Nodes show.
  let distribution = spec.distribution;
  if (!distribution) {
    const detection = detectDistribution(nodes);
    if (!detection.ok) return writeProblem(deps, rotation, { reason: REASONS.distributionUnknown, message: detection.message });
    distribution = detection.distribution;
  }

  // 7. The plan (a service this distribution lacks, or no node to touch, stalls here).
  const planned = planRotation({
    nodes,
    distribution,
    scope: nodeScope(spec.scope),
    service: spec.service,
    maxUnavailable: spec.strategy.maxUnavailable,
    nodeSelector: spec.strategy.nodeSelector,
    ...(spec.mode === 'Plan' ? { maxNodes: MAX_PLANNED_NODES } : {}),
  });
  if (!planned.ok) return writeProblem(deps, rotation, { reason: planned.reason, message: planned.message }, distribution);
  const plan = planned.plan;

  // 8. Plan mode: publish and stop. Holds no slot, creates nothing.
  if (spec.mode === 'Plan') {
    const start: CertificateRotationStatus = {
      ...status,
      observedGeneration: generation,
      distribution,
      startedAt: rfc3339(deps.now()),
      completedAt: undefined,
      plan: planStatus(plan),
    };
    return continuePlan(deps, rotation, start);
  }

  // 9. One rotation at a time.
  const holder = slotHolderFor(deps, rotation);
  if (holder) return writeQueued(deps, rotation, holder, distribution);

  // 10. Start: what the run rotates is frozen into status.runSpec here; its nodes
  //     are the ones selected now (run-state.ts rebuilds them on every pass).
  const now = rfc3339(deps.now());
  const start: CertificateRotationStatus = {
    ...status,
    observedGeneration: generation,
    distribution,
    runGeneration: generation,
    runFingerprint: runFingerprint(spec),
    phase: 'Progressing',
    startedAt: now,
    completedAt: undefined,
    plan: undefined,
    runSpec: runSpecOf(spec),
    nodes: [],
  };
  deps.log.info({ generation, nodes: plan.nodes.length, distribution }, 'starting a rotation run');
  return continueRun(deps, rotation, start, true);
}

/** One step of the cascade for the run recorded in `base` (see cascade.ts for the write order). */
async function continueRun(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  base: CertificateRotationStatus,
  starting: boolean,
): Promise<ReconcileResult | void> {
  const name = rotation.metadata.name!;
  const spec = rotation.spec;
  const now = deps.now();
  const runGeneration = base.runGeneration!;
  const distribution = base.distribution!;
  const nodeExists = nodeExistsIn(deps);
  // The run rotates what its runSpec says, even if the spec changed since (that
  // change starts its own run when this one ends); the knobs that steer a run
  // (paused, strategy) are read from the spec as it is now.
  const runSpec = base.runSpec ?? runSpecOf(spec);
  const run: CertificateRotation = { ...rotation, spec: { ...spec, scope: runSpec.scope, service: runSpec.service } };
  const here = runBasisFor(deps, rotation, base, run, runSpec, base.startedAt ?? rfc3339(now), starting);
  const { basis } = here;
  const d = decideCascade({
    rotation: run,
    distribution,
    runGeneration,
    nodes: basis.entries,
    basis,
    nodeRotations: here.nodeRotations,
    now,
    // A kept basis was built against these very Nodes, and its pass skipped any that were gone.
    nodeExists: here.kept ? undefined : nodeExists,
    reserved: base.nextNodes,
  });

  const listed = listedEntries(d);
  if (deps.runs?.verify) {
    const drift = passDrift(d, listed);
    if (drift !== undefined) throw new Error(`the pass's tally of ${name} differs from a walk over its nodes: ${drift}`);
  }
  const observedGeneration = observedGenerationOf(rotation, base);
  const summary = summarizeRun({
    generation: observedGeneration,
    mode: 'Apply',
    paused: spec.paused,
    plan: d.plan,
    progress: d.progress,
    tally: d.tally,
  });
  const terminal = summary.phase === 'Succeeded' || summary.phase === 'Failed';
  const next: CertificateRotationStatus = {
    ...base,
    observedGeneration,
    phase: summary.phase,
    progress: summary.progress,
    current: summary.current,
    runSpec,
    planDescription: describePlan(d.plan),
    nextNodes: terminal || d.next.length === 0 ? undefined : d.next,
    counts: d.tally.roles,
    nodes: compactRun(listed),
    conditions: mergeConditions(base.conditions, summary.conditions, { now, observedGeneration }),
    completedAt: terminal ? (base.completedAt ?? rfc3339(now)) : undefined,
  };

  // Intent first (fenced), then the objects it announces: in the background
  // when the process has a create pipeline, so the next pass (the next
  // hand-off) need not wait for this pass's creates. A node whose intent an
  // earlier write recorded (d.createFirst) need not wait for this write either:
  // its create goes out first, so a hand-off costs one API round trip, not two.
  // RKE: a run ends only after its certificates are in full-cluster-state
  // (success) or its bundle is gone (failure); see rke-run.ts for the order.
  const rke = distribution === 'rke' && deps.rke !== undefined;
  // Only bookkeeping changed, and this process wrote the status it decided
  // from a moment ago: the named nodes' creates go out, and the write waits
  // for a later pass, which decides the same changes again (status-hold.ts).
  const hold = holdVerdict({ base, next, decision: d, writtenAtMs: here.writtenAt, holdMs: deps.runs?.statusHoldMs ?? 0, nowMs: now.getTime(), stepsFollowWrite: rke });
  if (hold.hold) {
    await sendCreates(deps, name, d.createFirst);
    deps.log.debug({ started: d.createFirst.length, finished: d.finished.length, writeBy: new Date(hold.untilMs).toISOString() }, 'status write held');
    return { requeueAfterMs: Math.min(d.requeueAfterMs ?? Infinity, hold.untilMs - now.getTime()) };
  }
  // Every NodeRotation of the run, for the RKE steps only (an RKE cluster is small; a kept basis does not list them).
  const nodeRotations = !rke ? [] : here.kept ? runNodeRotations(deps, name, runGeneration) : here.nodeRotations;
  const stateNote = rke && summary.phase === 'Failed' ? failedRunStateNote(d.nodes) : undefined;
  if (stateNote) next.conditions = next.conditions!.map((c) => (c.type === 'Stalled' && c.status === 'True' ? { ...c, message: `${c.message}. ${stateNote}` } : c));
  if (rke && terminal && base.phase !== summary.phase) {
    if (summary.phase === 'Succeeded') await commitRkeState(deps, rotation, runGeneration, nodeRotations);
    else await discardRkeBundle(deps, rotation, runGeneration);
    await clearSealedBundles(deps, nodeRotations);
  }
  // RKE nodes get the run's bundle reference on their NodeRotation, which exists only after the write: nothing goes first.
  const createFirst = rke ? [] : d.createFirst;
  await sendCreates(deps, name, createFirst);
  // Forgotten until the write is through: a refused or failed write leaves nothing kept.
  deps.runs?.forget(name);
  const { rotation: stored, written } = await writeStatus(deps, rotation, next);
  if (deps.runs && !terminal) deps.runs.keep(name, here.run, stored.metadata.resourceVersion, here.nodes, advanceBasis(basis, d.nodes, d.progress, d.tally), here.rebuiltAt, now.getTime());
  // RKE: the certificates are issued once per run, after its intent is recorded and before the first node gets its instruction.
  let creates = rke ? [...d.createFirst, ...d.create] : d.create;
  if (rke && creates.length > 0) {
    let ref;
    try {
      ref = await ensureRkeBundle(deps, stored, runGeneration, nodeRotations);
    } catch (err) {
      if (!isPermanentIssueError(err)) throw err;
      return failUnissued(deps, stored, next, creates, (err as Error).message);
    }
    if (ref) creates = withBundleRef(creates, ref);
  }
  // RKE: a node in flight whose agent published its key gets its certificates sealed to it.
  if (rke && !terminal) {
    const inFlight = new Set(d.nodes.filter((n) => n.phase === 'Updating').map((n) => n.name));
    await sealBundleForWaitingNodes(deps, stored, runGeneration, nodeRotations, inFlight);
  }
  await sendCreates(deps, name, creates);
  if (starting && written) await pruneOldNodeRotations(deps, name, runGeneration, nodeExists);

  if (!written) return { requeueAfterMs: d.requeueAfterMs };
  // Events and metrics only for what is now persisted (a refused write re-decides and re-reports).
  if (starting) {
    const servers = d.plan.nodes.filter((n) => n.kind === 'server').length;
    deps.events.normal(
      stored,
      EVENT_REASONS.runStarted,
      `run of generation ${runGeneration} started: ${servers} server node(s) one at a time, then ${d.plan.nodes.length - servers} worker node(s) ${d.plan.maxUnavailable} at a time`,
    );
  }
  for (const e of d.events) {
    if (e.window && deps.events.routine) deps.events.routine(stored, e.parts ?? [e]);
    else deps.events[e.type === 'Normal' ? 'normal' : 'warning'](stored, e.reason, e.message);
  }
  for (const f of d.finished) {
    deps.metrics?.nodeFinished?.(f.phase, f.durationSeconds);
    for (const [service, t] of earliestByService(f.files, 'newNotAfter')) deps.metrics?.certificateNotAfter?.(f.name, service, Date.parse(t) / 1000);
  }
  const before = base.phase;
  if (summary.phase === 'Paused' && before !== 'Paused') deps.events.normal(stored, EVENT_REASONS.runPaused, summary.conditions[0]!.message);
  if (before === 'Paused' && summary.phase === 'Progressing') deps.events.normal(stored, EVENT_REASONS.runResumed, `resumed at ${summary.progress}`);
  if (terminal && before !== summary.phase) {
    deps.events.flushRoutine?.(stored);
    const seconds = base.startedAt ? (now.getTime() - Date.parse(base.startedAt)) / 1000 : 0;
    const ready = summary.conditions.find((c) => c.type === 'Ready')!;
    const stalled = summary.conditions.find((c) => c.type === 'Stalled')!;
    if (summary.phase === 'Succeeded') deps.events.normal(stored, EVENT_REASONS.runSucceeded, ready.message);
    else deps.events.warning(stored, EVENT_REASONS.runFailed, stalled.message);
    if (stateNote) deps.events.warning(stored, EVENT_REASONS.rkeStateNotUpdated, stateNote);
    deps.metrics?.runFinished?.(summary.phase === 'Succeeded' ? 'succeeded' : 'failed', seconds);
    deps.log.info({ phase: summary.phase, progress: summary.progress, seconds }, 'rotation run finished');
  }
  return { requeueAfterMs: d.requeueAfterMs };
}

/**
 * RKE: the run's certificates cannot be issued from full-cluster-state. The
 * nodes just recorded Updating get no instruction and are recorded Failed
 * (nothing was touched on them); the next pass ends the run, Stalled, naming why.
 */
async function failUnissued(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  next: CertificateRotationStatus,
  create: readonly import('../api/noderotation.js').NodeRotation[],
  message: string,
): Promise<ReconcileResult> {
  const names = new Set(create.map((nr) => nr.spec.nodeName));
  const why = `not started: the RKE certificates could not be issued from kube-system/full-cluster-state: ${message}`.slice(0, 1024);
  const finishedAt = rfc3339(deps.now());
  const nodes = (next.nodes ?? []).map((n) => (names.has(n.name) ? { ...n, phase: 'Failed' as const, finishedAt, message: why } : n));
  const { rotation: stored } = await writeStatus(deps, rotation, { ...next, nodes });
  deps.events.warning(stored, EVENT_REASONS.nodeFailed, why);
  deps.log.error({ nodes: [...names] }, why);
  return { requeueAfterMs: 0 };
}

/** Creates a rotation's NodeRotations: in the background when the process has a create pipeline (create-pipeline.ts), else now, a few at a time. */
async function sendCreates(deps: ControllerDeps, rotation: string, objects: readonly import('../api/noderotation.js').NodeRotation[]): Promise<void> {
  if (deps.creates) {
    deps.creates.start(rotation, objects);
    return;
  }
  for (let i = 0; i < objects.length; i += CREATE_CONCURRENCY) {
    await Promise.all(objects.slice(i, i + CREATE_CONCURRENCY).map((nr) => deps.write.createNodeRotation(nr)));
  }
}

/** Status for a generation that cannot start until a person acts: Stalled, naming what is wrong. */
async function writeProblem(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  problem: { reason: string; message: string },
  distribution?: CertificateRotationStatus['distribution'],
): Promise<void> {
  const state: RunState = { generation: rotation.metadata.generation!, mode: rotation.spec.mode, paused: rotation.spec.paused, problem, progress: new Map() };
  const { rotation: stored, written } = await writeSummary(deps, rotation, state, { distribution });
  if (written) deps.events.warning(stored, EVENT_REASONS.invalid, problem.message);
}

async function writeQueued(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  holder: string,
  distribution: CertificateRotationStatus['distribution'],
): Promise<void> {
  const state: RunState = { generation: rotation.metadata.generation!, mode: 'Apply', paused: rotation.spec.paused, queuedBehind: holder, progress: new Map() };
  const { rotation: stored, written } = await writeSummary(deps, rotation, state, { distribution });
  if (written) deps.events.normal(stored, EVENT_REASONS.queued, `waiting for CertificateRotation ${holder}: one rotation runs at a time`);
}

/** One pass of a plan (plan-mode.ts): fold in the checks, write, then ask the nodes not asked yet. */
async function continuePlan(deps: ControllerDeps, rotation: CertificateRotation, base: CertificateRotationStatus): Promise<ReconcileResult | void> {
  const name = rotation.metadata.name!;
  const generation = rotation.metadata.generation!;
  const spec = rotation.spec;
  const distribution = base.distribution!;
  const now = deps.now();
  const planned = base.plan?.nodes ?? [];
  const plan = planFromStatus(distribution, spec, planned.map((n) => ({ name: n.name, role: n.role, phase: 'Pending' as const })));
  const checks = deps.read.nodeRotationsOf(name).filter((nr) => nr.spec.generation === generation && nr.spec.action === 'Check');
  const outcome = collectChecks(planned, checks);
  const deadline = Date.parse(base.startedAt ?? rfc3339(now)) + parseDuration(spec.strategy.nodeTimeout);
  const done = (outcome.unsent.length === 0 && outcome.silent.length === 0) || now.getTime() >= deadline;
  const summary = summarizeRun({
    generation,
    mode: 'Plan',
    paused: spec.paused,
    plan,
    progress: new Map(),
    checks: {
      reported: outcome.reported,
      done,
      silent: done ? [...outcome.unsent, ...outcome.silent] : [],
      failed: outcome.failed,
      earliest: outcome.plan.earliestExpiry?.[0],
    },
  });
  const ready = summary.conditions.find((c) => c.type === 'Ready')!;
  const next: CertificateRotationStatus = {
    ...base,
    observedGeneration: generation,
    phase: summary.phase,
    progress: summary.progress,
    current: undefined,
    plan: outcome.plan,
    conditions: mergeConditions(base.conditions, summary.conditions, { now, observedGeneration: generation }),
    completedAt: done ? (base.completedAt ?? rfc3339(now)) : undefined,
  };
  const { rotation: stored, written } = await writeStatus(deps, rotation, next);
  if (!done) {
    const unsent = new Set(outcome.unsent);
    const ask = plan.nodes.filter((n) => unsent.has(n.name)).map((n) => buildNodeRotation(stored, generation, distribution, n, 'Check'));
    await sendCreates(deps, name, ask);
    return { requeueAfterMs: Math.max(1000, deadline - now.getTime() + 1000) };
  }
  if (!written) return;
  for (const e of outcome.perNode) deps.metrics?.certificateNotAfter?.(e.node, e.service, Date.parse(e.notAfter) / 1000);
  deps.events.normal(stored, EVENT_REASONS.planned, ready.message);
}

/** Status from summarizeRun for a generation with no run in progress. Earlier run's nodes stay as the record. */
async function writeSummary(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  state: RunState,
  extra: Partial<CertificateRotationStatus>,
) {
  const now = deps.now();
  const summary = summarizeRun(state);
  const prev = rotation.status ?? { observedGeneration: -1 };
  return writeStatus(deps, rotation, {
    ...prev,
    ...extra,
    observedGeneration: summary.observedGeneration,
    phase: summary.phase,
    progress: summary.progress,
    current: summary.current,
    conditions: mergeConditions(prev.conditions, summary.conditions, { now, observedGeneration: summary.observedGeneration }),
  });
}

/** Whether a Node is in the cache. */
/** The rotation `rotation` must wait for (queue-gate.ts), from the cache. */
function slotHolderFor(deps: ControllerDeps, rotation: CertificateRotation): string | undefined {
  return slotHolder(rotation, deps.read.rotations(), (r) => deps.read.nodeRotationsOf(r), nodeExistsIn(deps));
}

function nodeExistsIn(deps: ControllerDeps): (name: string) => boolean {
  return (name) => deps.read.nodeExists(name);
}

/**
 * NodeRotations of this rotation's runs before the previous one. Each run leaves
 * one per node (a Plan check too); kept forever they pile up in etcd and in every
 * cache. The current and the previous run's stay (what `kubectl get
 * noderotations` is read for); an older one is deleted only once its agent
 * reported it finished or its Node is gone (a new run starting means none holds
 * the slot, so this is belt and braces).
 */
async function pruneOldNodeRotations(deps: ControllerDeps, name: string, current: number, exists: (node: string) => boolean): Promise<void> {
  const all = deps.read.nodeRotationsOf(name).filter((nr) => nr.spec.rotation === name);
  const previous = Math.max(0, ...all.map((nr) => nr.spec.generation).filter((g) => g < current));
  for (const nr of all) {
    if (nr.spec.generation >= previous) continue;
    const finished = (nr.status && FINISHED_BY_AGENT.includes(nr.status.phase)) || nr.status?.phase === 'Checked';
    if (finished || !exists(nr.spec.nodeName)) await deps.write.deleteNodeRotation(nr.metadata.name!);
  }
}
