// `scope: Secrets`, `mode: Apply`: the run that renews Secret-backed serving
// certificates, in place or by their owner (Regenerate), one target at a time (so never two targets of one
// workload at once), each through target-steps.ts. The sync reads as the node
// run's does: start (discover, refuse what cannot be renewed, freeze the
// targets into status.secretRun), then on every pass the next step of the
// target in flight, a status write, and the requeue that step asked for.
//
// Why the run refuses a scope with targets it cannot renew instead of renewing
// the rest: a person who asked for "every webhook certificate in cattle-system"
// and got Ready=True would believe the expired one was handled too.
import type { CertificateRotation, CertificateRotationStatus } from '../../api/certificaterotation.js';
import { REASONS } from '../../api/constants.js';
import { MAX_RUN_SECRET_TARGETS, type SecretRunTarget, type SecretTargetStatus } from '../../api/secret-targets.js';
import { describeError, statusCode } from '../../kube/client.js';
import type { ReconcileResult } from '../../kube/workqueue.js';
import { rfc3339 } from '../cascade.js';
import { kstatus, mergeConditions } from '../conditions.js';
import type { ControllerDeps } from '../deps.js';
import { EVENT_REASONS } from '../event-reasons.js';
import { observedGenerationOf, runFingerprint } from '../run-state.js';
import { writeStatus } from '../status-writer.js';
import { discoverSecretTargets } from './discovery.js';
import { describeSecretPlan } from './plan-secrets.js';
import { stepTarget } from './target-steps.js';

/** Steps run back to back in one pass before the status is left for the next (a step that waits ends the pass sooner). */
const STEPS_PER_PASS = 12;

const IN_FLIGHT: readonly SecretRunTarget['phase'][] = ['Renewing', 'RollingBack'];

export const secretRunActive = (status: CertificateRotationStatus | undefined): boolean => status?.secretRun !== undefined && (status.phase === 'Progressing' || status.phase === 'Paused');

/** The target whose steps are running, if any. */
export const targetInFlight = (status: CertificateRotationStatus | undefined): SecretRunTarget | undefined => status?.secretRun?.targets.find((t) => IN_FLIGHT.includes(t.phase));

type Problem = { reason: string; message: string };

/**
 * Discovers, refuses a scope it cannot renew whole, and writes the run's start
 * (or its end, when there is nothing to renew). Returns a pre-run problem for
 * the caller to record; other errors are thrown for the work queue to retry.
 */
export async function startSecretRun(deps: ControllerDeps, rotation: CertificateRotation): Promise<Problem | ReconcileResult | void> {
  if (!deps.secretTargets) throw new Error('scope Secrets needs a SecretTargetSource (the controller wires the API server)');
  const generation = rotation.metadata.generation!;
  const spec = rotation.spec.secrets ?? {};
  const now = deps.now();
  let input;
  try {
    input = await deps.secretTargets.read(spec);
  } catch (err) {
    if (statusCode(err) !== 403) throw err;
    return { reason: REASONS.discoveryForbidden, message: `discovery may not read what spec.secrets covers: ${describeError(err)}. Grant the controller's ClusterRole get and list on it (the chart does: values secretTargets.enabled)` };
  }
  const result = discoverSecretTargets(input, spec);
  const refused = refusedTargets(result.targets);
  if (refused.length > 0) {
    const listed = refused.slice(0, 5).map((t) => `${t.secret.namespace}/${t.secret.name} (${t.action}: ${t.reason})`);
    return {
      reason: REASONS.secretTargetsNotRenewable,
      message: `${refused.length} Secret-backed certificate(s) in scope cannot be renewed: ${listed.join('; ')}${refused.length > 5 ? `; and ${refused.length - 5} more` : ''}. Nothing was changed; narrow spec.secrets to the ones that can (mode: Plan lists them)`,
    };
  }
  // Something named in spec.secrets that could not be followed to a Secret: renewing the rest would look like success.
  const named = !!(spec.webhookConfigurations?.length || spec.apiServices?.length || spec.conversionWebhooks?.length || spec.secretRefs?.length);
  if (named && result.unresolved.length > 0) {
    return {
      reason: REASONS.secretTargetsNotRenewable,
      message: `${result.unresolved.length} of what spec.secrets names could not be followed to a serving Secret: ${result.unresolved.slice(0, 5).map((u) => `${u.front} (${u.reason})`).join('; ')}. Nothing was changed`,
    };
  }
  const renewable = result.targets.filter((t) => t.action === 'RenewInPlace' || t.action === 'Regenerate');
  if (renewable.length > MAX_RUN_SECRET_TARGETS) {
    return { reason: REASONS.secretTargetsNotRenewable, message: `${renewable.length} Secret-backed certificates in scope; one run renews at most ${MAX_RUN_SECRET_TARGETS}: narrow spec.secrets (namespaces, selector) and run it in parts` };
  }
  const targets: SecretRunTarget[] = renewable.map((t) => {
    const renewal = result.renewals.get(`${t.secret.namespace}/${t.secret.name}`)!;
    const regenerate = t.action === 'Regenerate' ? { action: 'Regenerate' as const, ...(renewal.removes?.length ? { removes: renewal.removes } : {}) } : {};
    return { secret: t.secret, workload: t.workload!, fronts: t.fronts, services: renewal.services, ca: renewal.ca, ...regenerate, phase: 'Pending' };
  });
  const base: CertificateRotationStatus = {
    ...(rotation.status ?? { observedGeneration: -1 }),
    observedGeneration: generation,
    runGeneration: generation,
    runFingerprint: runFingerprint(rotation.spec),
    phase: 'Progressing',
    startedAt: rfc3339(now),
    completedAt: undefined,
    secretPlan: result.plan,
    secretRun: { targets },
  };
  if (targets.length === 0) {
    return finish(deps, rotation, base, 'ready', REASONS.succeeded, `nothing to renew: ${describeSecretPlan(result.plan, now)}`);
  }
  deps.log.info({ generation, targets: targets.length }, 'starting a run of Secret-backed certificates');
  return continueSecretRun(deps, rotation, base);
}

/** In scope but not renewable in place: the run refuses to start rather than leave them out silently. */
function refusedTargets(targets: readonly SecretTargetStatus[]): SecretTargetStatus[] {
  const refusal = (t: SecretTargetStatus): string | undefined => {
    if (t.action === 'CannotRenew') return t.reason;
    if (t.action !== 'RenewInPlace' && t.action !== 'Regenerate') return undefined;
    // Verification is the API server calling the new pods through a front; without one a renewal could not be checked.
    if (t.fronts.length === 0) return 'no webhook configuration, APIService or conversion webhook calls a Service that serves it, so a renewal could not be verified';
    if (!t.workload) return 'no Deployment, DaemonSet or StatefulSet owns the pods that mount it, so nothing would load a renewed pair';
    return undefined;
  };
  return targets.flatMap((t) => {
    const reason = refusal(t);
    return reason === undefined ? [] : [{ ...t, action: 'CannotRenew' as const, reason }];
  });
}

/**
 * The next steps of the run in `base`. With `finishing` (the rotation is being
 * deleted) only the target in flight goes on, to its end; none is started.
 */
export async function continueSecretRun(deps: ControllerDeps, rotation: CertificateRotation, base: CertificateRotationStatus, finishing = false): Promise<ReconcileResult | void> {
  const owner = { name: rotation.metadata.name!, uid: rotation.metadata.uid!, generation: base.runGeneration! };
  let status = base;
  let stored = rotation;
  for (let i = 0; i < STEPS_PER_PASS; i++) {
    const targets = status.secretRun!.targets;
    const index = targets.findIndex((t) => IN_FLIGHT.includes(t.phase));
    const stopped = targets.find((t) => t.phase === 'RolledBack' || t.phase === 'Failed');
    if (index < 0 && stopped) return end(deps, stored, status, stopped);
    if (index < 0 && targets.every((t) => t.phase === 'Rotated')) {
      return finish(deps, stored, status, 'ready', REASONS.succeeded, `${targets.length} Secret-backed certificate(s) renewed, rolled and verified: ${targets.map((t) => `${t.secret.namespace}/${t.secret.name}${t.action === 'Regenerate' ? ' (regenerated by its owner)' : ''}`).join(', ')}`.slice(0, 1000));
    }
    if (index < 0 && (finishing || rotation.spec.paused)) {
      if (finishing) return;
      return write(deps, stored, { ...status, phase: 'Paused' }, 'reconciling', REASONS.paused, `paused by spec.paused at ${progressOf(status)}; set spec.paused: false to continue`).then(() => undefined);
    }
    const at = index >= 0 ? index : targets.findIndex((t) => t.phase === 'Pending');
    const before = targets[at]!;
    const { target, waitMs } = await stepTarget(before, { cluster: deps.secretRun!, owner, now: deps.now(), nodeTimeout: rotation.spec.strategy.nodeTimeout, onFailure: rotation.spec.strategy.onFailure });
    const next: CertificateRotationStatus = { ...status, phase: 'Progressing', secretRun: { targets: targets.map((t, j) => (j === at ? target : t)) } };
    const label = `${target.secret.namespace}/${target.secret.name}`;
    if (target.phase !== before.phase || target.step !== before.step) deps.log.info({ secret: label, phase: target.phase, step: target.step }, 'Secret-backed target stepped');
    stored = await write(deps, stored, next, 'reconciling', REASONS.progressing, `${label}: ${target.phase === 'RollingBack' ? 'rolling back' : 'renewing'} (${target.step ?? target.phase}): ${target.message ?? ''}`.slice(0, 1000));
    status = next;
    if (target.phase === 'Rotated') deps.events.normal(stored, EVENT_REASONS.secretRenewed, `Secret ${label} ${target.action === 'Regenerate' ? 'regenerated by its owner' : 'renewed in place'}: ${target.message}`);
    if (waitMs !== undefined) return { requeueAfterMs: waitMs };
  }
  return { requeueAfterMs: 0 };
}

const progressOf = (status: CertificateRotationStatus): string => {
  const targets = status.secretRun?.targets ?? [];
  return `${targets.filter((t) => t.phase === 'Rotated').length}/${targets.length}`;
};

function currentOf(status: CertificateRotationStatus): string | undefined {
  const t = targetInFlight(status);
  return t ? `${t.secret.namespace}/${t.secret.name}`.slice(0, 256) : undefined;
}

async function write(deps: ControllerDeps, rotation: CertificateRotation, status: CertificateRotationStatus, state: 'ready' | 'reconciling' | 'stalled', reason: string, message: string): Promise<CertificateRotation> {
  const now = deps.now();
  const observedGeneration = observedGenerationOf(rotation, status);
  const next: CertificateRotationStatus = {
    ...status,
    observedGeneration,
    progress: progressOf(status),
    current: currentOf(status),
    conditions: mergeConditions(status.conditions, kstatus(state, reason, message), { now, observedGeneration }),
  };
  return (await writeStatus(deps, rotation, next)).rotation;
}

async function finish(deps: ControllerDeps, rotation: CertificateRotation, status: CertificateRotationStatus, state: 'ready' | 'stalled', reason: string, message: string): Promise<void> {
  const stored = await write(deps, rotation, { ...status, phase: state === 'ready' ? 'Succeeded' : 'Failed', completedAt: rfc3339(deps.now()) }, state, reason, message);
  if (state === 'ready') deps.events.normal(stored, EVENT_REASONS.runSucceeded, message);
  else deps.events.warning(stored, EVENT_REASONS.runFailed, message);
  // The same run metric as a node run's: a dashboard of runs counts these too.
  const seconds = status.startedAt ? (deps.now().getTime() - Date.parse(status.startedAt)) / 1000 : 0;
  deps.metrics?.runFinished?.(state === 'ready' ? 'succeeded' : 'failed', seconds);
}

/** A target rolled back or failed: the run stops there (later targets stay Pending), Stalled naming the target and step. */
async function end(deps: ControllerDeps, rotation: CertificateRotation, status: CertificateRotationStatus, t: SecretRunTarget): Promise<void> {
  const label = `Secret ${t.secret.namespace}/${t.secret.name} (${t.workload})`;
  const what = t.phase === 'RolledBack' ? `failed at step ${t.failedStep ?? t.step} and was rolled back` : `failed at step ${t.failedStep ?? t.step} and was not rolled back`;
  const message = `${label} ${what}: ${t.message ?? ''}; ${progressOf(status)} renewed, the run is stopped`.slice(0, 4000);
  if (t.phase === 'RolledBack') deps.events.warning(rotation, EVENT_REASONS.secretRolledBack, message);
  await finish(deps, rotation, status, 'stalled', t.phase === 'RolledBack' ? REASONS.secretTargetRolledBack : REASONS.secretTargetFailed, message);
}
