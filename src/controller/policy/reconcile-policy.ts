// One pass over one CertificateRotationPolicy, top to bottom:
//   1. gone? nothing to do;
//   2. steer this policy's running rotation by the window (pause when it
//      closes, resume what the policy paused when it opens);
//   3. delete finished rotations beyond historyLimit;
//   4. decide (decide.ts) and create a rotation if it says so;
//   5. write status if it changed; requeue at the next instant that matters
//      (a due time, a window opening or closing), at most an hour away.
// Level-based and idempotent: every pass derives everything from the caches,
// the clock and, before a create, a fresh list of the policy's rotations.
import type { CertificateInventory } from '../../api/certificateinventory.js';
import type { CertificateRotation, CertificateRotationInput } from '../../api/certificaterotation.js';
import type { CertificateRotationPolicy, CertificateRotationPolicyStatus } from '../../api/certificaterotationpolicy.js';
import { API_VERSION, CERTIFICATE_ROTATION, CERTIFICATE_ROTATION_POLICY, CONDITION_TYPES, LABELS, PAUSED_BY_POLICY_ANNOTATION, REASONS } from '../../api/constants.js';
import type { ReconcileResult } from '../../kube/workqueue.js';
import { mergeConditions } from '../conditions.js';
import type { Logger } from '../deps.js';
import { settled } from '../run-state.js';
import { jsonEqual } from '../status-writer.js';
import { decide, dueAt, observe, POLICY_GENERATION_ANNOTATION, startInWindow, type Observed, type PolicyInput, type Verdict } from './decide.js';
import { currentWindow, nextWindow } from './window.js';

/** On a rotation created for a certificate that had already expired (renewExpiredOutsideWindow): the window does not pause it. */
export const IGNORES_WINDOW_ANNOTATION = 'certrotator.io/ignores-window';
export const MAX_REQUEUE_MS = 3_600_000;

export interface PolicyDeps {
  policy(name: string): CertificateRotationPolicy | undefined;
  inventories(): readonly CertificateInventory[];
  nodeLabels(): ReadonlyMap<string, Record<string, string> | undefined>;
  rotations(): readonly CertificateRotation[];
  /** When each node a rotation rotated finished (ms), from its NodeRotations. */
  rotatedNodes(rotation: CertificateRotation): ReadonlyMap<string, number>;
  /** This policy's rotations read from the API server, not the cache: a create must never be doubled by a lagging cache. */
  listOwnedFresh(policy: string): Promise<CertificateRotation[]>;
  createRotation(rotation: CertificateRotationInput): Promise<void>;
  /** A JSON merge patch of metadata and spec. */
  patchRotation(name: string, patch: Record<string, unknown>): Promise<void>;
  deleteRotation(name: string): Promise<void>;
  writeStatus(policy: CertificateRotationPolicy, status: CertificateRotationPolicyStatus): Promise<void>;
  event(policy: CertificateRotationPolicy, type: 'Normal' | 'Warning', reason: string, message: string): void;
  now(): Date;
  log: Logger;
  /** The policy's Stalled reason after this pass, or undefined (not stalled, or gone): the metric alerts are made from. */
  stalled?(policy: string, reason: string | undefined): void;
}

/** creationTimestamp is typed Date but arrives as a string from a custom-object client: either way, its instant. */
const createdAt = (r: CertificateRotation): Date | undefined => (r.metadata.creationTimestamp ? new Date(r.metadata.creationTimestamp) : undefined);
const byAge = (a: CertificateRotation, b: CertificateRotation) =>
  (createdAt(a)?.getTime() ?? 0) - (createdAt(b)?.getTime() ?? 0) || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');

export function ownedBy(policy: string, rotations: readonly CertificateRotation[]): CertificateRotation[] {
  return rotations.filter((r) => r.metadata.labels?.[LABELS.policy] === policy).sort(byAge);
}

/** `<policy>-<UTC yyyymmdd-hhmmss>`, within the 253 characters of a name. */
export function rotationName(policy: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15).toLowerCase();
  return `${policy.slice(0, 253 - stamp.length - 1)}-${stamp}`;
}

export function rotationFor(policy: CertificateRotationPolicy, now: Date, ignoresWindow: boolean): CertificateRotationInput {
  const t = policy.spec.template;
  return {
    apiVersion: API_VERSION,
    kind: CERTIFICATE_ROTATION.kind,
    metadata: {
      name: rotationName(policy.metadata.name!, now),
      labels: { [LABELS.policy]: policy.metadata.name! },
      annotations: { [POLICY_GENERATION_ANNOTATION]: String(policy.metadata.generation ?? 0), ...(ignoresWindow ? { [IGNORES_WINDOW_ANNOTATION]: 'true' } : {}) },
      // Owned: deleted with the policy, and a GitOps tool that manages the policy does not prune it.
      ownerReferences: [{ apiVersion: API_VERSION, kind: CERTIFICATE_ROTATION_POLICY.kind, name: policy.metadata.name!, uid: policy.metadata.uid!, controller: true }],
    },
    spec: { ...(t.distribution ? { distribution: t.distribution } : {}), scope: t.scope, ...(t.service ? { service: t.service } : {}), mode: 'Apply', strategy: t.strategy },
  };
}

/**
 * The window's say over a running rotation of this policy: pause at close,
 * resume what the policy paused at opening, or once the policy has no window
 * any more (removed from the spec). A suspended policy, or one whose time zone
 * is unknown, touches nothing.
 */
async function steerByWindow(deps: PolicyDeps, policy: CertificateRotationPolicy, owned: readonly CertificateRotation[], seen: Observed): Promise<void> {
  const w = policy.spec.window;
  if (policy.spec.suspend || (w && !seen.window)) return;
  const open = !seen.window || seen.window.open;
  for (const r of owned) {
    if (settled(r) || r.metadata.annotations?.[IGNORES_WINDOW_ANNOTATION] === 'true') continue;
    const name = r.metadata.name!;
    const pausedByUs = r.metadata.annotations?.[PAUSED_BY_POLICY_ANNOTATION] === 'true';
    if (!open && !r.spec.paused) {
      await deps.patchRotation(name, { metadata: { annotations: { [PAUSED_BY_POLICY_ANNOTATION]: 'true' } }, spec: { paused: true } });
      deps.event(policy, 'Normal', 'WindowClosed', `paused CertificateRotation ${name}: the window closed; nodes in flight finish, the rest wait for the window opening at ${seen.window!.next.opensAt.toISOString()}`);
    } else if (open && r.spec.paused && pausedByUs) {
      await deps.patchRotation(name, { metadata: { annotations: { [PAUSED_BY_POLICY_ANNOTATION]: null } }, spec: { paused: false } });
      const why = seen.window ? `the window is open until ${seen.window.current!.closesAt.toISOString()}` : 'the policy has no window any more';
      deps.event(policy, 'Normal', 'WindowOpened', `resumed CertificateRotation ${name}: ${why}`);
    }
  }
}

/** Finished rotations beyond historyLimit, oldest first; the last one always stays (status names it). */
async function pruneHistory(deps: PolicyDeps, policy: CertificateRotationPolicy, owned: readonly CertificateRotation[]): Promise<void> {
  const finished = owned.filter(settled);
  const excess = finished.length - policy.spec.historyLimit;
  for (const r of finished.slice(0, Math.max(0, excess))) {
    if (r === owned.at(-1)) continue;
    await deps.deleteRotation(r.metadata.name!);
    deps.log.info({ policy: policy.metadata.name, rotation: r.metadata.name }, 'deleted a finished rotation beyond historyLimit');
  }
}

/** When the policy would create its next rotation if nothing changes. */
function nextRotationAt(policy: CertificateRotationPolicy, verdict: Verdict, seen: Observed): Date | undefined {
  if (verdict.create || !seen.nextExpiry || verdict.reason === REASONS.suspended) return undefined;
  if (verdict.reason !== REASONS.notDue) return verdict.retryAt;
  const due = dueAt(policy, seen.nextExpiry);
  const w = policy.spec.window;
  if (!w || !seen.window) return due;
  const start = startInWindow(policy, currentWindow(w, due) ?? nextWindow(w, due));
  return new Date(Math.max(due.getTime(), start.getTime()));
}

function statusFor(policy: CertificateRotationPolicy, now: Date, verdict: Verdict, seen: Observed, last: CertificateRotation | undefined, created: string | undefined): CertificateRotationPolicyStatus {
  const generation = policy.metadata.generation ?? 0;
  const stalled = !verdict.create && verdict.stalled === true;
  const next = nextRotationAt(policy, verdict, seen);
  const lastRotation = created
    ? { name: created, createdAt: now.toISOString() }
    : last && { name: last.metadata.name!, createdAt: (createdAt(last) ?? now).toISOString(), ...(last.status?.phase ? { phase: last.status.phase } : {}), ...(last.status?.completedAt ? { completedAt: last.status.completedAt } : {}) };
  return {
    observedGeneration: generation,
    ...(seen.nextExpiry ? { nextExpiry: seen.nextExpiry } : {}),
    ...(next ? { nextRotation: next.toISOString() } : {}),
    ...(seen.window ? { nextWindow: (seen.window.current?.opensAt ?? seen.window.next.opensAt).toISOString(), windowOpen: seen.window.open } : {}),
    ...(lastRotation ? { lastRotation } : {}),
    conditions: mergeConditions(
      policy.status?.conditions,
      [
        { type: CONDITION_TYPES.ready, status: stalled ? 'False' : 'True', reason: verdict.reason, message: verdict.message },
        { type: CONDITION_TYPES.stalled, status: stalled ? 'True' : 'False', reason: stalled ? verdict.reason : REASONS.asExpected, message: stalled ? verdict.message : '' },
      ],
      { now, observedGeneration: generation },
    ),
  };
}

/** The next instant a pass could decide differently, from now. */
function requeueAfter(now: Date, verdict: Verdict, seen: Observed): number {
  const instants = [verdict.create ? undefined : verdict.retryAt, seen.window?.current?.closesAt, seen.window && !seen.window.open ? seen.window.next.opensAt : undefined];
  const soonest = Math.min(MAX_REQUEUE_MS, ...instants.filter((d): d is Date => !!d).map((d) => d.getTime() - now.getTime()));
  return Math.max(1000, soonest);
}

export async function reconcilePolicy(deps: PolicyDeps, name: string): Promise<ReconcileResult | void> {
  const policy = deps.policy(name);
  if (!policy) {
    deps.stalled?.(name, undefined);
    return;
  }
  const now = deps.now();
  const rotations = deps.rotations();
  const owned = ownedBy(name, rotations);
  const last = owned.at(-1);
  const input: PolicyInput = { policy, now, inventories: deps.inventories(), nodeLabels: deps.nodeLabels(), rotations, owned, lastRotated: last ? deps.rotatedNodes(last) : new Map() };
  const seen = observe(input);

  await steerByWindow(deps, policy, owned, seen);
  await pruneHistory(deps, policy, owned);

  let verdict = decide(input, seen);
  let created: string | undefined;
  if (verdict.create) {
    const fresh = await deps.listOwnedFresh(name);
    const unfinished = fresh.find((r) => !settled(r));
    if (unfinished) {
      verdict = { create: false, reason: REASONS.rotationRunning, message: `CertificateRotation ${unfinished.metadata.name} has not finished` };
    } else {
      const rotation = rotationFor(policy, now, verdict.reason === REASONS.expiredOutsideWindow);
      await deps.createRotation(rotation);
      created = rotation.metadata.name!;
      deps.event(policy, 'Normal', REASONS.rotationCreated, `created CertificateRotation ${created}: ${verdict.message}`);
      deps.log.info({ policy: name, rotation: created, reason: verdict.reason }, 'created a rotation');
    }
  }

  const status = statusFor(policy, now, verdict, seen, owned.at(-1), created);
  if (!jsonEqual(status, policy.status ?? {})) {
    if (!verdict.create && verdict.stalled && policy.status?.conditions?.find((c) => c.type === CONDITION_TYPES.stalled)?.reason !== verdict.reason) {
      deps.event(policy, 'Warning', verdict.reason, verdict.message);
    }
    await deps.writeStatus(policy, status);
  }
  deps.stalled?.(name, !verdict.create && verdict.stalled ? verdict.reason : undefined);
  return { requeueAfterMs: requeueAfter(now, verdict, seen) };
}
