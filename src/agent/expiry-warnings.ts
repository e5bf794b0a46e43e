// Warning Events on the Node before its certificates expire. RKE2 and k3s emit
// CertificateExpirationWarning when a certificate is within 120 days of expiry
// at a service start (docs.rke2.io/security/certificates), which a node that
// never restarts never sees; the agent warns from its inventory instead, with
// the same reason, at 120, 30 and 7 days and once expired: one Event per threshold per
// certificate (a renewed file has a new notAfter, so it starts over). What was
// warned about is remembered in memory: an agent started again warns once more
// about what is still within a threshold, which is what `kubectl get events`
// (Events live an hour) needs to show it again.
import type { CertificateReport } from '../host/inspect.js';

export const WARN_AT_DAYS = [120, 30, 7] as const;

export interface ExpiryWarning {
  /** A stable identity: the file, its notAfter and the threshold reached. */
  readonly key: string;
  readonly reason: 'CertificateExpirationWarning' | 'CertificateExpired';
  readonly message: string;
}

const DAY = 86_400_000;

/** The warning a file is due, if any: the tightest threshold it is within, or expired. */
export function expiryWarning(r: CertificateReport, now: Date): ExpiryWarning | undefined {
  if (r.error !== undefined || !r.notAfter || !r.path) return undefined;
  const notAfter = Date.parse(r.notAfter);
  const left = notAfter - now.getTime();
  const how = `rotate it with a CertificateRotation (scope Service, service ${r.service}) or \`certrotator node rotate --service ${r.service}\``;
  if (left <= 0) {
    return { key: `${r.path}|${r.notAfter}|expired`, reason: 'CertificateExpired', message: `/${r.path} (service ${r.service}) expired on ${r.notAfter}; ${how}` };
  }
  const threshold = [...WARN_AT_DAYS].reverse().find((d) => left <= d * DAY);
  if (threshold === undefined) return undefined;
  return {
    key: `${r.path}|${r.notAfter}|${threshold}`,
    reason: 'CertificateExpirationWarning',
    message: `/${r.path} (service ${r.service}) expires in ${Math.floor(left / DAY)} days, on ${r.notAfter} (within ${threshold} days); ${how}`,
  };
}

/** Remembers what was warned about, so each threshold of each certificate is said once. */
export class ExpiryWarner {
  private readonly said = new Set<string>();

  constructor(private readonly emit: (w: ExpiryWarning) => void) {}

  /** Warns about every report due one not said yet; returns how many were emitted. */
  warn(reports: readonly CertificateReport[], now: Date): number {
    let n = 0;
    for (const r of reports) {
      const w = expiryWarning(r, now);
      if (!w || this.said.has(w.key)) continue;
      this.said.add(w.key);
      this.emit(w);
      n++;
    }
    return n;
  }
}
