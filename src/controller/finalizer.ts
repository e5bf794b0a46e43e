// Deleting a rotation mid-run must leave no NodeRotation behind and no node
// half-done. Deleting a NodeRotation under an agent that is restarting
// rke2-server would cut the node off from its instruction mid-step, so the
// finalizer waits for the nodes in flight to report (or to overrun
// nodeTimeout: an agent that never answers must not block deletion forever),
// then deletes every NodeRotation of the rotation itself (not leaving it to
// the garbage collector, so "nothing left behind" holds the moment the
// rotation is gone) and only then lets the rotation go.
import type { CertificateRotation } from '../api/certificaterotation.js';
import { CONDITION_TYPES, FINALIZER, REASONS } from '../api/constants.js';
import { parseDuration } from '../api/duration.js';
import type { NodeRotation } from '../api/noderotation.js';
import type { ReconcileResult } from '../kube/workqueue.js';
import { setCondition } from './conditions.js';
import type { ControllerDeps } from './deps.js';
import { EVENT_REASONS } from './event-reasons.js';
import { FINISHED_BY_AGENT } from './run-state.js';
import { writeStatus } from './status-writer.js';

export function hasFinalizer(rotation: CertificateRotation): boolean {
  return rotation.metadata.finalizers?.includes(FINALIZER) ?? false;
}

export async function addFinalizer(deps: ControllerDeps, rotation: CertificateRotation): Promise<CertificateRotation> {
  return deps.write.setFinalizers(rotation, [...(rotation.metadata.finalizers ?? []), FINALIZER]);
}

/** Milliseconds a NodeRotation may still be in flight; 0 when it finished or was given up on. */
export function inFlightFor(nr: NodeRotation, now: Date, timeoutMs: number): number {
  // A Check (mode: Plan) only reads: deleting it under its agent cuts nothing off.
  if (nr.spec.action === 'Check') return 0;
  if (nr.status && FINISHED_BY_AGENT.includes(nr.status.phase)) return 0;
  const since = nr.status?.startedAt ?? (nr.metadata.creationTimestamp as unknown as string | undefined);
  const started = since ? new Date(since).getTime() : now.getTime();
  return Math.max(0, started + timeoutMs - now.getTime());
}

export async function finalizeRotation(deps: ControllerDeps, rotation: CertificateRotation): Promise<ReconcileResult | void> {
  if (!hasFinalizer(rotation)) return;
  const name = rotation.metadata.name!;
  // A create still in flight would land after the deletes below: let it finish first.
  if (deps.creates) await deps.creates.settled(name);
  const now = deps.now();
  const nodeRotations = deps.read.nodeRotationsOf(name);
  const timeoutMs = parseDuration(rotation.spec.strategy.nodeTimeout);
  const waiting = nodeRotations.map((nr) => ({ nr, ms: inFlightFor(nr, now, timeoutMs) })).filter((w) => w.ms > 0);

  // 1. A node is mid-step: say so in status and wait for its report (the NodeRotation's update wakes us).
  if (waiting.length > 0) {
    const nodes = waiting.map((w) => w.nr.spec.nodeName).join(', ');
    const message = `being deleted: waiting for node(s) ${nodes} to finish before removing the NodeRotations`;
    const observedGeneration = rotation.status?.observedGeneration ?? -1;
    const conditions = setCondition(
      rotation.status?.conditions,
      { type: CONDITION_TYPES.reconciling, status: 'True', reason: REASONS.finishingInFlight, message },
      { now, observedGeneration },
    );
    const { written, rotation: stored } = await writeStatus(deps, rotation, { observedGeneration: -1, ...rotation.status, conditions });
    if (written) deps.events.normal(stored, EVENT_REASONS.deleting, message);
    return { requeueAfterMs: Math.min(...waiting.map((w) => w.ms)) + 1000 };
  }

  // 2. Nothing in flight: remove every NodeRotation, then let the rotation go.
  for (const nr of nodeRotations) await deps.write.deleteNodeRotation(nr.metadata.name!);
  await deps.write.setFinalizers(
    rotation,
    (rotation.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
  );
  deps.log.info({ nodeRotations: nodeRotations.length }, 'rotation deleted; its NodeRotations removed');
}
