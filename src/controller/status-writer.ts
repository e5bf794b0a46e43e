// Status writes: at most one per pass, none when nothing changed, always
// fenced by the resourceVersion the decision was based on. A 409 surfaces
// as ConflictError and the pass is retried from fresh state: the write that
// lost is recomputed, never merged blindly over someone else's.
import type { CertificateRotation, CertificateRotationStatus } from '../api/certificaterotation.js';
import type { ControllerDeps } from './deps.js';

/** JSON with sorted keys and no undefined: two statuses that say the same thing give the same text. */
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

/** A plain object (what JSON.parse makes); a Date or a class instance is not. */
function isRecord(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Deep equality of JSON values where key order and undefined fields do not
 * matter (what `canonical(a) === canonical(b)` says), without building either
 * text: a status of 500 nodes is compared on every pass, and most passes
 * change one entry or none.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i] ?? null, b[i] ?? null)) return false; // JSON writes undefined items as null
    return true;
  }
  if (!isRecord(a) || !isRecord(b)) {
    // Not plain JSON (a Date, say): compare what JSON would say.
    const objects = (typeof a === 'object' && a !== null) || (typeof b === 'object' && b !== null);
    return objects && canonical(a) === canonical(b);
  }
  let defined = 0;
  for (const k in a) {
    if (a[k] === undefined) continue;
    defined++;
    if (!jsonEqual(a[k], b[k])) return false;
  }
  for (const k in b) if (b[k] !== undefined) defined--;
  return defined === 0;
}

export function statusEqual(a: CertificateRotationStatus | undefined, b: CertificateRotationStatus | undefined): boolean {
  return jsonEqual(a ?? {}, b ?? {});
}

/** Drops undefined fields (a replace must not carry `"x": undefined` noise); a copy, like a JSON round trip, without the text. */
export function compact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => (v === undefined ? null : compact(v))) as T;
  if (!isRecord(value)) return (typeof value === 'object' && value !== null ? JSON.parse(JSON.stringify(value)) : value) as T;
  const out: Record<string, unknown> = {};
  for (const k in value) {
    const v = value[k];
    if (v !== undefined) out[k] = compact(v);
  }
  return out as T;
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
