import { describe, expect, it } from '@jest/globals';
import { certificateStatus, failsAt, parseWarnWithin, type CertificateStatus, type FailOn } from './status.js';

const DAY = 86_400_000;
const now = new Date('2026-06-01T12:00:00Z');
const at = (days: number, ms = 0) => new Date(now.getTime() + days * DAY + ms);
const window = (notBefore: Date, notAfter: Date) => ({ notBefore, notAfter });

describe('certificateStatus', () => {
  it.each<[string, ReturnType<typeof window> | undefined, number, CertificateStatus]>([
    // [case, validity window, warn within (ms), status]
    ['far from expiry', window(at(-300), at(65)), 30 * DAY, 'OK'],
    ['just outside the warning window', window(at(-300), at(30, 1)), 30 * DAY, 'OK'],
    ['exactly at the warning edge (k3s: warn.After(NotAfter) is strict)', window(at(-300), at(30)), 30 * DAY, 'OK'],
    ['inside the warning window', window(at(-300), at(29)), 30 * DAY, 'WARNING'],
    ['one millisecond before NotAfter', window(at(-300), at(0, 1)), 30 * DAY, 'WARNING'],
    ['at NotAfter itself (still valid, RFC 5280)', window(at(-300), now), 30 * DAY, 'WARNING'],
    ['one millisecond after NotAfter', window(at(-300), at(0, -1)), 30 * DAY, 'EXPIRED'],
    ['21 days expired', window(at(-386), at(-21)), 30 * DAY, 'EXPIRED'],
    ['expired, with no warning window', window(at(-386), at(-21)), 0, 'EXPIRED'],
    ['warn-within 0 never warns', window(at(-300), at(0, 1)), 0, 'OK'],
    ['a wider window warns earlier', window(at(-300), at(65)), 90 * DAY, 'WARNING'],
    ['NotBefore in the future', window(at(0, 1), at(365)), 30 * DAY, 'NOT YET VALID'],
    ['at NotBefore itself', window(now, at(365)), 30 * DAY, 'OK'],
    // k3s tests NotBefore first: a window entirely in the future is not yet valid.
    ['not yet valid and inside the warning window', window(at(1), at(2)), 30 * DAY, 'NOT YET VALID'],
    ['unreadable file', undefined, 30 * DAY, 'ERROR'],
  ])('%s', (_case, w, warnWithinMs, expected) => {
    expect(certificateStatus(w, now, warnWithinMs)).toBe(expected);
  });
});

describe('failsAt', () => {
  it.each<[CertificateStatus, FailOn, boolean]>([
    ['OK', 'warning', false],
    ['WARNING', 'warning', true],
    ['EXPIRED', 'warning', true],
    ['NOT YET VALID', 'warning', true],
    ['ERROR', 'warning', true],
    ['OK', 'expired', false],
    ['WARNING', 'expired', false],
    ['EXPIRED', 'expired', true],
    ['NOT YET VALID', 'expired', false],
    // A file nobody could read never passes a check.
    ['ERROR', 'expired', true],
  ])('%s with --fail-on %s: %s', (status, level, fails) => {
    expect(failsAt(status, level)).toBe(fails);
  });
});

describe('parseWarnWithin', () => {
  it.each([
    ['30d', 30 * DAY],
    ['0d', 0],
    ['720h', 30 * DAY],
    ['90m', 90 * 60_000],
    ['1h30m', 90 * 60_000],
  ])('%s = %d ms', (text, ms) => {
    expect(parseWarnWithin(text)).toBe(ms);
  });

  it.each(['', '30', '-1d', '1.5d', '1d12h', '30 days', 'd'])('refuses %j', (text) => {
    expect(() => parseWarnWithin(text)).toThrow(/is not a duration; write it like 30d/);
  });
});
