// Status writes: at most one per pass, none when nothing changed, always
// fenced by the resourceVersion the decision was based on. A 409 surfaces
// as ConflictError and the pass is retried from fresh state: the write that
// lost is recomputed, never merged blindly over someone else's.
import type { CertificateRotation, CertificateRotationStatus } from '../api/certificaterotation.js';
import type { ControllerDeps } from './deps.js';

/** JSON with sorted keys and no undefined: two statuses that say the same thing compare equal. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, x]) => x !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      );
    }
    return v;
  });
}

export function statusEqual(a: CertificateRotationStatus | undefined, b: CertificateRotationStatus | undefined): boolean {
  return canonical(a ?? {}) === canonical(b ?? {});
}

/** Drops undefined fields (a replace must not carry `"x": undefined` noise). */
export function compact(status: CertificateRotationStatus): CertificateRotationStatus {
  return JSON.parse(JSON.stringify(status)) as CertificateRotationStatus;
}

/**
 * Writes `status` unless the object already says exactly that. Returns the
 * object to continue with and whether a write happened (events are recorded
 * only for transitions that were actually persisted).
 */
export async function writeStatus(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  status: CertificateRotationStatus,
): Promise<{ rotation: CertificateRotation; written: boolean }> {
  const next = compact(status);
  if (statusEqual(rotation.status, next)) return { rotation, written: false };
  const stored = await deps.write.replaceStatus(rotation, next);
  return { rotation: stored, written: true };
}
