import { describe, expect, test } from '@jest/globals';
import { WEEKDAYS, type MaintenanceWindow } from '../../api/certificaterotationpolicy.js';
import { currentWindow, jitterMs, MAX_JITTER_MS, nextWindow, validTimeZone } from './window.js';

const w = (startTime: string, endTime: string, timeZone = 'UTC', days: MaintenanceWindow['days'] = [...WEEKDAYS]): MaintenanceWindow => ({ days, startTime, endTime, timeZone });
const iso = (d: Date | undefined) => d?.toISOString();

describe('currentWindow: open or not at an instant', () => {
  // 2027-01-06 is a Wednesday.
  test.each<[string, MaintenanceWindow, string, [string, string] | undefined]>([
    ['inside a same-day window', w('02:00', '04:00'), '2027-01-06T03:00:00Z', ['2027-01-06T02:00:00.000Z', '2027-01-06T04:00:00.000Z']],
    ['at the opening minute: open', w('02:00', '04:00'), '2027-01-06T02:00:00Z', ['2027-01-06T02:00:00.000Z', '2027-01-06T04:00:00.000Z']],
    ['at the closing minute: closed', w('02:00', '04:00'), '2027-01-06T04:00:00Z', undefined],
    ['before it', w('02:00', '04:00'), '2027-01-06T01:59:59Z', undefined],
    ['across midnight, before midnight', w('22:00', '02:00'), '2027-01-06T23:30:00Z', ['2027-01-06T22:00:00.000Z', '2027-01-07T02:00:00.000Z']],
    ['across midnight, after midnight: the window of the day before', w('22:00', '02:00'), '2027-01-07T01:00:00Z', ['2027-01-06T22:00:00.000Z', '2027-01-07T02:00:00.000Z']],
    ['across midnight from a listed day into an unlisted one', w('22:00', '02:00', 'UTC', ['wednesday']), '2027-01-07T01:00:00Z', ['2027-01-06T22:00:00.000Z', '2027-01-07T02:00:00.000Z']],
    ['after midnight of an unlisted day whose own window would open later', w('22:00', '02:00', 'UTC', ['thursday']), '2027-01-07T01:00:00Z', undefined],
    ['an unlisted day', w('02:00', '04:00', 'UTC', ['monday', 'tuesday']), '2027-01-06T03:00:00Z', undefined],
    ['a listed day', w('02:00', '04:00', 'UTC', ['wednesday']), '2027-01-06T03:00:00Z', ['2027-01-06T02:00:00.000Z', '2027-01-06T04:00:00.000Z']],
    // Time zones: the day is the local day, not UTC's.
    ['Berlin winter (UTC+1)', w('02:00', '04:00', 'Europe/Berlin'), '2027-01-06T01:30:00Z', ['2027-01-06T01:00:00.000Z', '2027-01-06T03:00:00.000Z']],
    ['Berlin summer (UTC+2)', w('02:00', '04:00', 'Europe/Berlin'), '2027-07-07T00:30:00Z', ['2027-07-07T00:00:00.000Z', '2027-07-07T02:00:00.000Z']],
    ['Tokyo: a Wednesday window seen on Tuesday in UTC', w('01:00', '03:00', 'Asia/Tokyo', ['wednesday']), '2027-01-05T17:00:00Z', ['2027-01-05T16:00:00.000Z', '2027-01-05T18:00:00.000Z']],
    ['Los Angeles: Tuesday evening local is Wednesday in UTC', w('20:00', '23:00', 'America/Los_Angeles', ['tuesday']), '2027-01-06T05:00:00Z', ['2027-01-06T04:00:00.000Z', '2027-01-06T07:00:00.000Z']],
    ['a half-hour zone (Kolkata, UTC+5:30)', w('02:00', '03:00', 'Asia/Kolkata'), '2027-01-05T20:45:00Z', ['2027-01-05T20:30:00.000Z', '2027-01-05T21:30:00.000Z']],
    // Daylight saving time (Europe/Berlin: 2027-03-28 02:00 → 03:00; 2027-10-31 03:00 → 02:00).
    ['spring forward: a window over the change is an hour shorter', w('01:00', '05:00', 'Europe/Berlin'), '2027-03-28T01:30:00Z', ['2027-03-28T00:00:00.000Z', '2027-03-28T03:00:00.000Z']],
    ['spring forward: a start in the skipped hour opens just past the gap', w('02:30', '04:00', 'Europe/Berlin'), '2027-03-28T01:30:00Z', ['2027-03-28T01:30:00.000Z', '2027-03-28T02:00:00.000Z']],
    ['spring forward: a window entirely in the skipped hour opens past the gap, as long as always', w('02:10', '02:50', 'Europe/Berlin'), '2027-03-28T01:20:00Z', ['2027-03-28T01:10:00.000Z', '2027-03-28T01:50:00.000Z']],
    ['fall back: a window over the change is an hour longer', w('01:00', '05:00', 'Europe/Berlin'), '2027-10-31T03:30:00Z', ['2027-10-30T23:00:00.000Z', '2027-10-31T04:00:00.000Z']],
    ['fall back: a repeated start opens at its later occurrence', w('02:30', '04:00', 'Europe/Berlin'), '2027-10-31T00:45:00Z', undefined],
    ['fall back: … and is open then', w('02:30', '04:00', 'Europe/Berlin'), '2027-10-31T01:45:00Z', ['2027-10-31T01:30:00.000Z', '2027-10-31T03:00:00.000Z']],
    ['US spring forward (New York 2027-03-14 02:00 → 03:00), across midnight', w('23:00', '04:00', 'America/New_York'), '2027-03-14T07:30:00Z', ['2027-03-14T04:00:00.000Z', '2027-03-14T08:00:00.000Z']],
  ])('%s', (_name, window, at, expected) => {
    const span = currentWindow(window, new Date(at));
    expect(span ? [iso(span.opensAt), iso(span.closesAt)] : undefined).toEqual(expected);
  });
});

describe('nextWindow: the first opening after an instant', () => {
  test.each<[string, MaintenanceWindow, string, string]>([
    ['later the same day', w('02:00', '04:00'), '2027-01-06T01:00:00Z', '2027-01-06T02:00:00.000Z'],
    ['while one is open: the next one', w('02:00', '04:00'), '2027-01-06T03:00:00Z', '2027-01-07T02:00:00.000Z'],
    ['at the opening instant: the next one', w('02:00', '04:00'), '2027-01-06T02:00:00Z', '2027-01-07T02:00:00.000Z'],
    ['the next listed day (Wednesday → Saturday)', w('02:00', '04:00', 'UTC', ['saturday']), '2027-01-06T05:00:00Z', '2027-01-09T02:00:00.000Z'],
    ['a week ahead when only today is listed and it has passed', w('02:00', '04:00', 'UTC', ['wednesday']), '2027-01-06T05:00:00Z', '2027-01-13T02:00:00.000Z'],
    ['in a zone west of UTC, across the UTC date line', w('22:00', '02:00', 'America/New_York', ['friday']), '2027-01-06T12:00:00Z', '2027-01-09T03:00:00.000Z'],
    ['over spring forward: 02:00 local the day after the change is UTC+2', w('02:00', '04:00', 'Europe/Berlin'), '2027-03-28T05:00:00Z', '2027-03-29T00:00:00.000Z'],
    ['from inside the skipped hour', w('02:30', '04:00', 'Europe/Berlin'), '2027-03-28T00:00:00Z', '2027-03-28T01:30:00.000Z'],
    ['over fall back', w('02:00', '04:00', 'Europe/Berlin'), '2027-10-31T05:00:00Z', '2027-11-01T01:00:00.000Z'],
    ['end of year', w('00:30', '01:30', 'UTC', ['saturday']), '2027-12-31T12:00:00Z', '2028-01-01T00:30:00.000Z'],
  ])('%s', (_name, window, at, expected) => {
    expect(iso(nextWindow(window, new Date(at)).opensAt)).toBe(expected);
  });
});

describe('jitterMs', () => {
  const span = (hours: number) => ({ opensAt: new Date('2027-01-06T02:00:00Z'), closesAt: new Date(Date.parse('2027-01-06T02:00:00Z') + hours * 3_600_000) });
  test('the same for one policy every time, different across policies, within the bound', () => {
    const uids = Array.from({ length: 50 }, (_, i) => `0b8a7c3e-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const values = uids.map((u) => jitterMs(u, span(4)));
    expect(uids.map((u) => jitterMs(u, span(4)))).toEqual(values);
    expect(new Set(values).size).toBeGreaterThan(40);
    for (const v of values) expect(v).toBeGreaterThanOrEqual(0);
    for (const v of values) expect(v).toBeLessThan(MAX_JITTER_MS);
  });
  test('at most a quarter of a short window', () => {
    for (let i = 0; i < 50; i++) expect(jitterMs(`uid-${i}`, span(1))).toBeLessThan(15 * 60_000);
  });
});

test('validTimeZone: what Intl knows', () => {
  expect(validTimeZone('Europe/Berlin')).toBe(true);
  expect(validTimeZone('UTC')).toBe(true);
  expect(validTimeZone('Mars/Olympus_Mons')).toBe(false);
});
