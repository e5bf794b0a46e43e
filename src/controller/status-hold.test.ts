// holdVerdict: which passes may leave their status write to a later one, as a
// table of (written status, status the pass would write, its decision, clock)
// → hold until when, or the reason to write now.
import { describe, expect, it } from '@jest/globals';
import type { CertificateRotationStatus } from '../api/certificaterotation.js';
import type { NodeRotation } from '../api/noderotation.js';
import type { HoldInput } from './status-hold.js';
import { holdVerdict, REFILL_BELOW } from './status-hold.js';

const WRITTEN_AT = 10_000;
const NAMED = Array.from({ length: 16 }, (_, i) => `w${i}`);

const base: CertificateRotationStatus = {
  observedGeneration: 1,
  phase: 'Progressing',
  progress: '3/19',
  current: 's3',
  runGeneration: 1,
  nextNodes: NAMED,
  counts: { server: { Rotated: 2, Updating: 1 }, worker: { Pending: 16 } } as never,
  nodes: [{ name: 's3', role: 'etcd,controlplane', phase: 'Updating' }],
  conditions: [
    { type: 'Ready', status: 'False', reason: 'Progressing', message: '3/19 rotated', lastTransitionTime: '2026-09-01T10:00:00Z', observedGeneration: 1 },
    { type: 'Reconciling', status: 'True', reason: 'Progressing', message: 'rotating s3', lastTransitionTime: '2026-09-01T10:00:00Z', observedGeneration: 1 },
  ],
};

/** The pass after s3 reported: w0 and w1 (named next) start, the counts and messages move. */
const bookkeeping: CertificateRotationStatus = {
  ...base,
  progress: '4/19',
  current: 'w0, w1',
  nextNodes: NAMED.slice(2),
  counts: { server: { Rotated: 3 }, worker: { Updating: 2, Pending: 14 } } as never,
  nodes: [
    { name: 'w0', role: 'worker', phase: 'Updating' },
    { name: 'w1', role: 'worker', phase: 'Updating' },
  ],
  conditions: base.conditions!.map((c) => ({ ...c, message: c.type === 'Ready' ? '4/19 rotated' : 'rotating w0' })),
};

const created = (names: string[]) => names.map((name) => ({ metadata: { name } }) as NodeRotation);

type Over = Partial<Omit<HoldInput, 'decision'>> & { decision?: Partial<HoldInput['decision']> };

function input(over: Over = {}): HoldInput {
  const { decision, ...rest } = over;
  return {
    base,
    next: bookkeeping,
    writtenAtMs: WRITTEN_AT,
    holdMs: 1_000,
    nowMs: WRITTEN_AT + 200,
    stepsFollowWrite: false,
    ...rest,
    decision: { create: [], createFirst: created(['w0', 'w1']), events: [], finished: [{ name: 's3', phase: 'Rotated', durationSeconds: 30, files: [] }], next: NAMED.slice(2), ...decision },
  };
}

describe('holdVerdict', () => {
  it('holds a pass that only moves bookkeeping, until the hold is up', () => {
    expect(holdVerdict(input())).toEqual({ hold: true, untilMs: WRITTEN_AT + 1_000 });
  });

  it.each<[string, Over, RegExp]>([
    ['holding is off (0 ms)', { holdMs: 0 }, /holding is off/],
    ['the status was not written by this process, or it does not know when', { writtenAtMs: undefined }, /no write of this process/],
    ['the written status is as old as the hold', { nowMs: WRITTEN_AT + 1_000 }, /1000 ms old/],
    ['a node starts that no written status names', { decision: { create: created(['w16']) } }, /1 node\(s\) start that no written status names/],
    ['RKE: its bundle and sealing follow every write', { stepsFollowWrite: true }, /steps follow every write/],
    ['one node in flight (a server, or maxUnavailable 1)', { next: { ...bookkeeping, nodes: bookkeeping.nodes!.slice(0, 1) } }, /fewer than 2 nodes in flight/],
    ['a warning', { decision: { events: [{ type: 'Warning', reason: 'NodeFailed', message: 'w0 failed' }] } }, /warning/],
    ['a node stopped without rotating', { decision: { finished: [{ name: 's3', phase: 'RolledBack', durationSeconds: 3, files: [] }] } }, /stopped without rotating/],
    ['a condition changed its status', { next: { ...bookkeeping, conditions: bookkeeping.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'True', reason: 'Succeeded' } : c)) } }, /a condition changed/],
    ['a condition appeared', { next: { ...bookkeeping, conditions: [...bookkeeping.conditions!, { type: 'Stalled', status: 'True', reason: 'NodeFailed', message: 'x', lastTransitionTime: '2026-09-01T10:00:01Z' }] } }, /a condition changed/],
    ['the phase changed', { next: { ...bookkeeping, phase: 'Paused' } }, /status.phase changed/],
    ['a new generation was observed', { next: { ...bookkeeping, observedGeneration: 2 } }, /status.observedGeneration changed/],
    ['the run completed', { next: { ...bookkeeping, completedAt: '2026-09-01T10:00:02Z' } }, /status.completedAt changed/],
    [
      `fewer than ${REFILL_BELOW} of the nodes named next are left unstarted`,
      { next: { ...bookkeeping, nextNodes: [...NAMED.slice(9), 'w16', 'w17'] }, decision: { next: [...NAMED.slice(9), 'w16', 'w17'], createFirst: created(NAMED.slice(0, 9)) } },
      /7 of the nodes named next are left/,
    ],
  ])('writes now: %s', (_name, over, reason) => {
    const verdict = holdVerdict(input(over));
    expect(verdict.hold).toBe(false);
    expect(verdict.hold === false && verdict.reason).toMatch(reason);
  });

  it('holds at the end of the plan, where fewer nodes are left than the refill mark: all of them were named', () => {
    const left = ['w14', 'w15'];
    const end = input({ base: { ...base, nextNodes: ['w13', ...left] }, next: { ...bookkeeping, nextNodes: left }, decision: { next: left, createFirst: created(['w13']) } });
    expect(holdVerdict(end).hold).toBe(true);
  });

  it('holds when every named node has started and none is left to name (the last workers in flight)', () => {
    const end = input({ base: { ...base, nextNodes: ['w15'] }, next: { ...bookkeeping, nextNodes: undefined }, decision: { next: [], createFirst: created(['w15']) } });
    expect(holdVerdict(end).hold).toBe(true);
  });
});
