// The STATUS of a certificate file in `node check`, and what `--fail-on` makes of it.
//
// The four certificate statuses and their order of tests are k3s's
// (pkg/util/cert.go GetCertStatus, used by `k3s certificate check`):
//   now before NotBefore          → NOT YET VALID
//   now after NotAfter            → EXPIRED
//   now + warn-within after NotAfter → WARNING
//   otherwise                     → OK
// "after" is strict on both ends, as Go's x509 Verify is (NotAfter itself is
// still valid, RFC 5280 §4.1.2.5). k3s warns CertificateRenewDays (90, later
// 120) ahead, the window in which it renews leaves itself at start; certrotator
// defaults to 30 days and lets --warn-within change it.
// ERROR is ours: k3s skips a file it cannot read (a debug log line), which hides
// exactly the file that needs attention; node check reports it instead.
import { parseDuration } from '../api/duration.js';

export type CertificateStatus = 'OK' | 'WARNING' | 'EXPIRED' | 'NOT YET VALID' | 'ERROR';

export interface ValidityWindow {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** `window` undefined: the file could not be read or parsed. */
export function certificateStatus(window: ValidityWindow | undefined, now: Date, warnWithinMs: number): CertificateStatus {
  if (!window) return 'ERROR';
  const t = now.getTime();
  if (t < window.notBefore.getTime()) return 'NOT YET VALID';
  if (t > window.notAfter.getTime()) return 'EXPIRED';
  if (t + warnWithinMs > window.notAfter.getTime()) return 'WARNING';
  return 'OK';
}

export const FAIL_ON_LEVELS = ['warning', 'expired'] as const;
export type FailOn = (typeof FAIL_ON_LEVELS)[number];

// Which statuses fail each --fail-on level. A file that cannot be read fails
// both: "no file is expired" cannot be claimed for a file nobody could read.
// NOT YET VALID fails `warning` only: it is a clock matter (the node's clock is
// behind the issuer's; RKE2 and RKE back-date NotBefore), the file becomes valid
// by itself and a renewal is not what it needs, while `expired` answers "is a
// rotation needed now?".
const FAILING: Record<FailOn, ReadonlySet<CertificateStatus>> = {
  warning: new Set(['WARNING', 'EXPIRED', 'NOT YET VALID', 'ERROR']),
  expired: new Set(['EXPIRED', 'ERROR']),
};

export function failsAt(status: CertificateStatus, level: FailOn): boolean {
  return FAILING[level].has(status);
}

export function isFailOn(text: string): text is FailOn {
  return (FAIL_ON_LEVELS as readonly string[]).includes(text);
}

/**
 * --warn-within: whole days (`30d`, the unit certificate lifetimes are spoken
 * in) or a Go duration as the rest of certrotator takes them (`720h`, `90m`;
 * see api/duration.ts). Milliseconds; throws on anything else.
 */
export function parseWarnWithin(text: string): number {
  const days = /^([0-9]+)d$/.exec(text);
  if (days) return Number(days[1]) * 86_400_000;
  try {
    return parseDuration(text);
  } catch {
    throw new Error(`"${text}" is not a duration; write it like 30d, 720h or 90m`);
  }
}
