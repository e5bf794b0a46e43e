import { describe, expect, it } from '@jest/globals';
import type { CertificateReport } from '../host/inspect.js';
import { ExpiryWarner, expiryWarning } from './expiry-warnings.js';

const NOW = new Date('2026-12-03T12:00:00Z');
const DAY = 86_400_000;
const report = (daysLeft: number, extra: Partial<CertificateReport> = {}): CertificateReport =>
  ({ service: 'admin', path: 'var/lib/rancher/rke2/server/tls/client-admin.crt', notAfter: new Date(NOW.getTime() + daysLeft * DAY).toISOString(), status: 'OK', ...extra }) as CertificateReport;

describe('expiryWarning', () => {
  it.each<[string, CertificateReport, string | undefined, string | undefined]>([
    ['200 days left: nothing', report(200), undefined, undefined],
    ['exactly 120 days: within 120', report(120), 'CertificateExpirationWarning', 'within 120 days'],
    ['100 days: within 120', report(100), 'CertificateExpirationWarning', 'within 120 days'],
    ['25 days: within 30, not 120', report(25), 'CertificateExpirationWarning', 'within 30 days'],
    ['3 days: within 7', report(3), 'CertificateExpirationWarning', 'within 7 days'],
    ['expired a day ago', report(-1), 'CertificateExpired', 'expired on'],
    ['unreadable: no warning (the read error metric says it)', report(3, { error: 'not readable' }), undefined, undefined],
  ])('%s', (_, r, reason, words) => {
    const w = expiryWarning(r, NOW);
    expect(w?.reason).toBe(reason);
    if (words) expect(w!.message).toContain(words);
    if (w) expect(w.message).toMatch(/^\/var\/lib\/rancher\/rke2\/server\/tls\/client-admin\.crt \(service admin\) .*certrotator node rotate --service admin/);
  });
});

describe('ExpiryWarner', () => {
  it('says each threshold of each certificate once; a renewed file (new notAfter) starts over', () => {
    const said: string[] = [];
    const warner = new ExpiryWarner((w) => said.push(w.key));
    expect(warner.warn([report(100), report(200, { path: 'other.crt' })], NOW)).toBe(1);
    expect(warner.warn([report(100)], NOW)).toBe(0);
    // Later, the same file crosses 30 days: one more.
    expect(warner.warn([report(100)], new Date(NOW.getTime() + 75 * DAY))).toBe(1);
    // Renewed: a new notAfter, 365 days away: nothing; and once it is within 120 again, said again.
    expect(warner.warn([report(365)], NOW)).toBe(0);
    expect(warner.warn([report(365)], new Date(NOW.getTime() + 250 * DAY))).toBe(1);
    expect(said).toHaveLength(3);
  });
});
