// `scope: Secrets`, `mode: Plan`: discover the Secret-backed serving
// certificates spec.secrets selects and publish what a rotation would do with
// each, changing nothing. One pass does it all: unlike a node plan there is
// no agent to ask, the controller reads everything itself.
import type { CertificateRotation, CertificateRotationStatus } from '../../api/certificaterotation.js';
import { REASONS } from '../../api/constants.js';
import type { SecretPlanStatus } from '../../api/secret-targets.js';
import { describeError, statusCode } from '../../kube/client.js';
import { rfc3339 } from '../cascade.js';
import { kstatus, mergeConditions } from '../conditions.js';
import type { ControllerDeps } from '../deps.js';
import { EVENT_REASONS } from '../event-reasons.js';
import { writeStatus } from '../status-writer.js';
import { discoverSecretTargets } from './discovery.js';

/** A plan the controller may not read for is retried this often (RBAC may be fixed any time). */
export const FORBIDDEN_RETRY_MS = 60_000;

/**
 * Publishes the plan, or returns the problem that stops it (the controller
 * may not read what discovery needs) for the caller to record as any other
 * pre-run problem. Other errors are thrown: the work queue retries them.
 */
export async function planSecretTargets(deps: ControllerDeps, rotation: CertificateRotation): Promise<{ reason: string; message: string } | undefined> {
  const generation = rotation.metadata.generation!;
  const spec = rotation.spec.secrets ?? {};
  if (!deps.secretTargets) throw new Error('scope Secrets needs a SecretTargetSource (the controller wires the API server)');
  const now = deps.now();
  const prev = rotation.status ?? { observedGeneration: -1 };

  let input;
  try {
    input = await deps.secretTargets.read(spec);
  } catch (err) {
    if (statusCode(err) !== 403) throw err;
    return {
      reason: REASONS.discoveryForbidden,
      message: `discovery may not read what spec.secrets covers: ${describeError(err)}. Grant the controller's ClusterRole get and list on it (the chart does: values secretTargets.enabled)`,
    };
  }

  const result = discoverSecretTargets(input, spec);
  const message = describeSecretPlan(result.plan, now);
  const next: CertificateRotationStatus = {
    ...prev,
    observedGeneration: generation,
    phase: 'Planned',
    progress: `0/${result.plan.total}`,
    current: undefined,
    startedAt: rfc3339(now),
    completedAt: rfc3339(now),
    secretPlan: result.plan,
    conditions: mergeConditions(prev.conditions, kstatus('ready', REASONS.planned, message), { now, observedGeneration: generation }),
  };
  const { rotation: stored, written } = await writeStatus(deps, rotation, next);
  if (!written) return undefined;
  deps.log.info({ generation, total: result.plan.total, unresolved: result.unresolved.length }, 'published the plan of Secret-backed certificates');
  deps.events.normal(stored, EVENT_REASONS.planned, message);
  return undefined;
}

/** The Ready message: what the rotation covers, what it would do, what needs a person first. */
export function describeSecretPlan(plan: SecretPlanStatus, now: Date): string {
  const parts = [
    `planned ${plan.total} Secret-backed certificate(s): ${plan.renewInPlace} renew in place, ${plan.regenerate} regenerate, ${plan.leaveAlone} left alone, ${plan.cannotRenew} cannot renew; nothing changed`,
  ];
  const first = plan.targets[0];
  if (first?.notAfter) parts.push(`earliest notAfter ${first.notAfter} (${first.secret.namespace}/${first.secret.name})`);
  // Listed earliest first, so the expired ones are at the head of the list.
  const expired = plan.targets.filter((t) => t.notAfter !== undefined && Date.parse(t.notAfter) <= now.getTime()).length;
  if (expired > 0) parts.push(`${expired}${plan.targets.length < plan.total && expired === plan.targets.length ? '+' : ''} already expired`);
  const stale = plan.targets.filter((t) => !t.caBundleCurrent && t.fronts.length > 0).length;
  if (stale > 0) parts.push(`${stale} with a caBundle that does not trust the certificate served`);
  if (plan.unresolvedCount) parts.push(`${plan.unresolvedCount} front(s) could not be followed to a Secret (status.secretPlan.unresolved)`);
  return parts.join('; ');
}
