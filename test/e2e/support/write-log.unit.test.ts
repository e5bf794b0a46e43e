import { describe, expect, test } from '@jest/globals';
import type { Interval } from './rotation.js';
import { unexplainedWriteFailures, WriteLog } from './write-log.js';

// Three servers restarted one after another, then a worker.
const NODES: Interval[] = [
  { node: 's1', role: 'etcd,controlplane', start: 1_000, end: 2_000 },
  { node: 's2', role: 'etcd,controlplane', start: 3_000, end: 4_000 },
  { node: 's3', role: 'etcd,controlplane', start: 5_000, end: 6_000 },
  { node: 'w1', role: 'worker', start: 7_000, end: 8_000 },
];

// A write every 20 ms from 0 to 9 s; `fails(t)` says which were refused.
function log(fails: (t: number) => boolean): WriteLog {
  const l = new WriteLog();
  for (let t = 0; t < 9_000; t += 20) {
    l.attempted++;
    if (fails(t)) l.recordFailure(`w-${t}: HTTP 503`, t);
    else l.recordAck(`w-${t}`, t);
  }
  return l;
}

describe('unexplainedWriteFailures', () => {
  const cases: [string, (t: number) => boolean, RegExp[]][] = [
    ['every write acknowledged', () => false, []],
    ['a third of the writes fail while s2 restarts: one API server of three', (t) => t >= 3_000 && t <= 4_000 && t % 60 === 0, []],
    ['the moment a server restarts, at the edges of its window', (t) => t === 1_000 || t === 6_000, []],
    ['a write fails between two servers, in the hand-off', (t) => t === 2_500, [/outside every server's window: w-2500/]],
    ['a write fails while only the worker restarts', (t) => t === 7_500, [/outside every server's window: w-7500/]],
    ['a write fails before the run starts', (t) => t === 0, [/outside every server's window: w-0/]],
    ['most writes fail while s3 restarts: more than one server is down', (t) => t >= 5_000 && t <= 6_000 && t % 60 !== 0, [/^s3: 33\.\d% acknowledged in its window, below 50%$/, /% of all writes acknowledged, below 95%$/]],
    [
      'each window loses 40%: within each bound, but not the run',
      (t) => t % 1_000 < 400 && t >= 1_000 && t < 7_000 && Math.floor(t / 1_000) % 2 === 1,
      [/% of all writes acknowledged, below 95%$/],
    ],
  ];
  test.each(cases)('%s', (_name, fails, expected) => {
    const problems = unexplainedWriteFailures(log(fails), NODES);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((re, k) => expect(problems[k]).toMatch(re));
  });

  test('an interval is judged only by the writes sent inside it', () => {
    const l = log((t) => t >= 3_000 && t <= 4_000);
    expect(l.availabilityBetween(3_000, 4_000)).toBe(0);
    expect(l.availabilityBetween(1_000, 2_000)).toBe(1);
    expect(l.availabilityBetween(9_500, 9_600)).toBe(1);
  });
});
