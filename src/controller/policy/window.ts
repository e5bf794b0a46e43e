// Maintenance windows in a time zone, as system-upgrade-controller and kured
// read them: on each listed day the window opens at startTime local time and
// closes at endTime, on the next day when endTime is earlier (a window that
// crosses midnight belongs to the day it opens). Everything is computed as
// instants, from the zone's own offsets (Intl), so daylight saving time moves
// the window with the wall clock:
// - a local time skipped by a spring-forward change maps to the same distance
//   past the gap (02:30 on a day that jumps 02:00→03:00 opens at 03:30), as
//   Temporal's "compatible" disambiguation does;
// - a local time repeated by a fall-back change opens at its later occurrence.
import { createHash } from 'node:crypto';
import { WEEKDAYS, type MaintenanceWindow } from '../../api/certificaterotationpolicy.js';

const MINUTE = 60_000;
const DAY = 86_400_000;
/** Jitter is at most this, and at most a quarter of the window, so a run starts well inside it. */
export const MAX_JITTER_MS = 30 * MINUTE;

export interface WindowSpan {
  opensAt: Date;
  closesAt: Date;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Whether the runtime knows the zone (the CRD only checks its shape). */
export function validTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock reading in the zone at `at`, as if it were UTC (ms since epoch). */
function wallClock(at: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(at))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
}

/** The instant that reads `wall` (a wall-clock time written as UTC ms) in the zone. */
function instantOf(wall: number, timeZone: string): number {
  const offset1 = wallClock(wall, timeZone) - wall;
  const t = wall - offset1;
  const offset2 = wallClock(t, timeZone) - t;
  return offset1 === offset2 ? t : wall - offset2;
}

function minutesOf(clock: string): number {
  const [h, m] = clock.split(':').map(Number);
  return h! * 60 + m!;
}

/** The window opening on the local calendar day `day` (UTC ms of its midnight), if that day is listed. */
function spanOn(w: MaintenanceWindow, day: number): WindowSpan | undefined {
  if (!w.days.includes(WEEKDAYS[new Date(day).getUTCDay()]!)) return undefined;
  const start = minutesOf(w.startTime);
  const end = minutesOf(w.endTime);
  const opensAt = instantOf(day + start * MINUTE, w.timeZone);
  const closesAt = instantOf(day + (end > start ? 0 : DAY) + end * MINUTE, w.timeZone);
  // Defensive: no zone's changes make a listed window empty, but a span must never run backwards.
  return closesAt > opensAt ? { opensAt: new Date(opensAt), closesAt: new Date(closesAt) } : undefined;
}

/** UTC ms of the local calendar day (midnight, written as UTC) that `at` falls on in the zone. */
function localDay(at: number, timeZone: string): number {
  const wall = wallClock(at, timeZone);
  return wall - (((wall % DAY) + DAY) % DAY);
}

/** The window open at `at`, if any. */
export function currentWindow(w: MaintenanceWindow, at: Date): WindowSpan | undefined {
  const today = localDay(at.getTime(), w.timeZone);
  // Yesterday's window may still be open after midnight.
  for (const day of [today - DAY, today]) {
    const span = spanOn(w, day);
    if (span && span.opensAt.getTime() <= at.getTime() && at.getTime() < span.closesAt.getTime()) return span;
  }
  return undefined;
}

/** The first window that opens after `at` (within the next eight days; every listed day recurs weekly). */
export function nextWindow(w: MaintenanceWindow, at: Date): WindowSpan {
  const today = localDay(at.getTime(), w.timeZone);
  for (let k = 0; k <= 8; k++) {
    const span = spanOn(w, today + k * DAY);
    if (span && span.opensAt.getTime() > at.getTime()) return span;
  }
  // Unreachable with at least one listed day (the CRD requires one).
  throw new Error(`spec.window: no opening within eight days of ${at.toISOString()}`);
}

/**
 * How long after its window opens a policy starts a run: the same for one
 * policy every time (from its uid), different across clusters, so a fleet of
 * clusters with the same window does not restart its control planes in the
 * same minute.
 */
export function jitterMs(uid: string, span: WindowSpan): number {
  const bound = Math.min(MAX_JITTER_MS, (span.closesAt.getTime() - span.opensAt.getTime()) / 4);
  const fraction = createHash('sha256').update(uid).digest().readUInt32BE(0) / 0x1_0000_0000;
  return Math.floor(fraction * bound);
}
