// Whether a CertificateRotationPolicy creates a rotation now, and if not why
// and until when: a chain of small pure checks (cert-manager's
// trigger/policies shape), each of which either decides or passes on. The
// first that decides wins; the order is the order a person would ask in.
import type { CertificateInventory } from '../../api/certificateinventory.js';
import type { CertificateRotation } from '../../api/certificaterotation.js';
import type { CertificateRotationPolicy } from '../../api/certificaterotationpolicy.js';
import { REASONS } from '../../api/constants.js';
import { parseDuration } from '../../api/duration.js';
import { matchesSelector } from '../plan.js';
import { settled } from '../run-state.js';
import { currentWindow, jitterMs, nextWindow, validTimeZone, type WindowSpan } from './window.js';

export interface Expiry {
  service: string;
  node: string;
  notAfter: string;
  path?: string;
  endpoint?: string;
}

export interface PolicyInput {
  policy: CertificateRotationPolicy;
  now: Date;
  inventories: readonly CertificateInventory[];
  /** Node name → labels, for the template's nodeSelector; a node not here has left the cluster. */
  nodeLabels: ReadonlyMap<string, Record<string, string> | undefined>;
  /** Every CertificateRotation of the cluster (one runs at a time). */
  rotations: readonly CertificateRotation[];
  /** This policy's rotations, oldest first. */
  owned: readonly CertificateRotation[];
  /** The nodes the newest of them rotated, each with when it finished (ms). */
  lastRotated: ReadonlyMap<string, number>;
}

export type Verdict =
  | { create: true; reason: string; message: string }
  | { create: false; reason: string; message: string; stalled?: boolean; retryAt?: Date };

/** What the status shows whatever the verdict. */
export interface Observed {
  nextExpiry?: Expiry;
  window?: { open: boolean; next: WindowSpan; current?: WindowSpan };
}

/** The annotation on a created rotation naming the policy generation it was made for. */
export const POLICY_GENERATION_ANNOTATION = 'certrotator.io/policy-generation';

const at = (d: Date) => d.toISOString();

/** Earliest notAfter first; ties by node, then service, so the answer does not depend on cache order. */
export function expiresFirst(a: Expiry, b: Expiry): number {
  return Date.parse(a.notAfter) - Date.parse(b.notAfter) || a.node.localeCompare(b.node) || a.service.localeCompare(b.service);
}

/** The earliest expiry per (node, service) in the template's scope, in no particular order. */
export function inScope(input: PolicyInput): Expiry[] {
  const t = input.policy.spec.template;
  const out: Expiry[] = [];
  for (const inv of input.inventories) {
    const status = inv.status;
    if (!status) continue;
    if (!input.nodeLabels.has(status.nodeName)) continue;
    if (t.distribution && status.distribution !== t.distribution) continue;
    if (!matchesSelector(input.nodeLabels.get(status.nodeName), t.strategy.nodeSelector)) continue;
    for (const s of status.services) {
      if (t.scope === 'Service' && s.name !== t.service) continue;
      out.push({ service: s.name, node: status.nodeName, notAfter: s.notAfter, ...(s.path ? { path: s.path } : {}), ...(s.endpoint ? { endpoint: s.endpoint } : {}) });
    }
  }
  return out;
}

/**
 * The one certificate in scope that expires first. One pass, no sort: every
 * rotation change re-decides every policy, and at 5,000 nodes the scope holds
 * tens of thousands of (node, service) entries of which only this one is read.
 */
export function earliestInScope(input: PolicyInput): Expiry | undefined {
  let first: Expiry | undefined;
  for (const e of inScope(input)) if (!first || expiresFirst(e, first) < 0) first = e;
  return first;
}

export function observe(input: PolicyInput): Observed {
  const nextExpiry = earliestInScope(input);
  const w = input.policy.spec.window;
  if (!w || !validTimeZone(w.timeZone)) return { nextExpiry };
  const current = currentWindow(w, input.now);
  return { nextExpiry, window: { open: !!current, next: nextWindow(w, input.now), ...(current ? { current } : {}) } };
}

/** When a certificate becomes due for this policy: renewBefore ahead of its notAfter. */
export function dueAt(policy: CertificateRotationPolicy, e: Expiry): Date {
  return new Date(Date.parse(e.notAfter) - parseDuration(policy.spec.renewBefore));
}

/** When this policy starts a rotation inside a window: its opening plus the policy's own jitter. */
export function startInWindow(policy: CertificateRotationPolicy, span: WindowSpan): Date {
  return new Date(span.opensAt.getTime() + jitterMs(policy.metadata.uid ?? policy.metadata.name ?? '', span));
}

const describeExpiry = (e: Expiry) => `${e.service} on ${e.node} (${e.path ?? e.endpoint ?? 'certificate'})`;

type Check = (input: PolicyInput, seen: Observed) => Verdict | undefined;

const suspended: Check = ({ policy }) =>
  policy.spec.suspend ? { create: false, reason: REASONS.suspended, message: 'spec.suspend is true: no rotation is created or paused' } : undefined;

const timeZoneKnown: Check = ({ policy }) => {
  const tz = policy.spec.window?.timeZone;
  if (tz === undefined || validTimeZone(tz)) return undefined;
  return { create: false, stalled: true, reason: REASONS.invalidTimeZone, message: `spec.window.timeZone "${tz}" is not a time zone this controller knows (an IANA name such as Europe/Berlin)` };
};

/** A rotation of this policy that failed for this generation: trying again by itself would fail again. */
const lastFailed: Check = ({ policy, owned }) => {
  const last = owned.at(-1);
  if (!last || last.status?.phase !== 'Failed' || !settled(last)) return undefined;
  if (last.metadata.annotations?.[POLICY_GENERATION_ANNOTATION] !== String(policy.metadata.generation)) return undefined;
  const why = last.status.conditions?.find((c) => c.type === 'Ready')?.message;
  return {
    create: false,
    stalled: true,
    reason: REASONS.lastRotationFailed,
    message: `CertificateRotation ${last.metadata.name} failed${why ? `: ${why}` : ''}. Fix the cause, then delete it (or change this policy) to let the policy try again`,
  };
};

const oneAtATime: Check = ({ rotations }) => {
  const running = rotations.find((r) => !settled(r));
  return running ? { create: false, reason: REASONS.rotationRunning, message: `CertificateRotation ${running.metadata.name} has not finished; the policy starts none while another runs` } : undefined;
};

const inventoryKnown: Check = (_input, seen) =>
  seen.nextExpiry
    ? undefined
    : { create: false, reason: REASONS.waitingForInventory, message: 'no CertificateInventory in scope yet: each node’s agent writes one at start and every --inventory-interval' };

/**
 * After this policy's last rotation, each node it rotated must have scanned
 * again since it finished (its agent scans right after its report): until then
 * its inventory still shows the old expiry, and the policy would rotate the
 * same certificates twice.
 */
const inventoryFresh: Check = ({ owned, inventories, lastRotated: finishedAt }) => {
  const last = owned.at(-1);
  if (!last || last.status?.phase !== 'Succeeded') return undefined;
  const stale = inventories
    .filter((i) => i.status && finishedAt.has(i.status.nodeName) && Date.parse(i.status.scannedAt) < finishedAt.get(i.status.nodeName)!)
    .map((i) => i.status!.nodeName);
  if (stale.length === 0) return undefined;
  const shown = stale.sort().slice(0, 5).join(', ') + (stale.length > 5 ? ` and ${stale.length - 5} more` : '');
  return { create: false, reason: REASONS.waitingForInventory, message: `waiting for the inventories of ${shown}, scanned before ${last.metadata.name} rotated them` };
};

const due: Check = ({ policy, now }, seen) => {
  const e = seen.nextExpiry!;
  const dueTime = dueAt(policy, e);
  if (now < dueTime) return { create: false, reason: REASONS.notDue, message: `the first certificate in scope, ${describeExpiry(e)}, expires at ${e.notAfter}; due for rotation at ${at(dueTime)} (renewBefore ${policy.spec.renewBefore})`, retryAt: dueTime };
  return undefined;
};

/**
 * Due although the policy's last rotation finished after it became due: that
 * rotation did not renew it past renewBefore (renewBefore longer than the
 * certificates live, or a leaf clamped to a CA that expires soon). Another
 * rotation would do the same, again and again: stop and say so.
 */
const notRenewedByLast: Check = ({ policy, owned }, seen) => {
  const last = owned.at(-1);
  const done = last?.status?.phase === 'Succeeded' ? last.status.completedAt : undefined;
  if (!done) return undefined;
  const e = seen.nextExpiry!;
  if (dueAt(policy, e).getTime() >= Date.parse(done)) return undefined;
  return {
    create: false,
    stalled: true,
    reason: REASONS.stillDueAfterRotation,
    message: `${describeExpiry(e)} expires at ${e.notAfter}, within renewBefore ${policy.spec.renewBefore} even after ${last!.metadata.name} finished at ${done}: another rotation would not change that. Shorten spec.renewBefore below the certificates' lifetime, or renew the CA that limits it`,
  };
};

const expiredNow: Check = ({ policy, now }, seen) => {
  const e = seen.nextExpiry!;
  if (Date.parse(e.notAfter) > now.getTime() || !policy.spec.renewExpiredOutsideWindow) return undefined;
  return { create: true, reason: REASONS.expiredOutsideWindow, message: `${describeExpiry(e)} expired at ${e.notAfter}; spec.renewExpiredOutsideWindow: rotating at once` };
};

const insideWindow: Check = ({ policy, now }, seen) => {
  const e = seen.nextExpiry!;
  const why = `${describeExpiry(e)} expires at ${e.notAfter}, within renewBefore ${policy.spec.renewBefore}`;
  if (!seen.window) return { create: true, reason: REASONS.rotationCreated, message: `${why}; no window: rotating now` };
  const { current, next } = seen.window;
  if (current) {
    const startAt = startInWindow(policy, current);
    if (now >= startAt) return { create: true, reason: REASONS.rotationCreated, message: `${why}; the window is open until ${at(current.closesAt)}` };
    return { create: false, reason: REASONS.waitingForWindow, message: `${why}; starting at ${at(startAt)}, inside the window open since ${at(current.opensAt)} (jitter)`, retryAt: startAt };
  }
  const startAt = startInWindow(policy, next);
  if (Date.parse(e.notAfter) <= now.getTime()) {
    return {
      create: false,
      stalled: true,
      reason: REASONS.expiredOutsideWindow,
      message: `${describeExpiry(e)} EXPIRED at ${e.notAfter}; the next window opens at ${at(next.opensAt)}. Set spec.renewExpiredOutsideWindow: true to rotate at once`,
      retryAt: startAt,
    };
  }
  return { create: false, reason: REASONS.waitingForWindow, message: `${why}; the next window opens at ${at(next.opensAt)}`, retryAt: startAt };
};

const CHAIN: readonly Check[] = [suspended, timeZoneKnown, lastFailed, oneAtATime, inventoryKnown, inventoryFresh, due, notRenewedByLast, expiredNow, insideWindow];

export function decide(input: PolicyInput, seen: Observed = observe(input)): Verdict {
  for (const check of CHAIN) {
    const verdict = check(input, seen);
    if (verdict) return verdict;
  }
  // insideWindow always decides.
  throw new Error('unreachable: the policy chain ended without a verdict');
}
