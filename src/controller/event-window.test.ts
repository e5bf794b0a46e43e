// Workers' routine Events gathered across passes (event-window.ts).
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import type { CertificateRotation } from '../api/certificaterotation.js';
import { combineEvents, type NodeEvent } from './cascade.js';
import { EventWindow } from './event-window.js';

const rotation = (uid: string): CertificateRotation => ({ metadata: { name: uid, uid } }) as CertificateRotation;
const rotated = (name: string): NodeEvent => ({
  type: 'Normal',
  reason: 'NodeRotated',
  message: `node ${name} (worker) rotated in 2s`,
  window: true,
  combine: { key: 'worker', head: (n) => `${n} worker nodes rotated: `, item: `${name} in 2s` },
});
const started = (name: string): NodeEvent => ({
  type: 'Normal',
  reason: 'NodeStarted',
  message: `rotating node ${name} (worker): kubelet`,
  window: true,
  combine: { key: 'worker: kubelet', head: (n) => `rotating ${n} worker nodes (kubelet): `, item: name },
});

describe('EventWindow', () => {
  let sent: string[];
  let window: EventWindow;
  beforeEach(() => {
    jest.useFakeTimers();
    sent = [];
    window = new EventWindow({ normal: (o, r, m) => sent.push(`${o.metadata.uid} ${r}: ${m}`), warning: (o, r, m) => sent.push(`${o.metadata.uid} ${r}! ${m}`) }, 5_000);
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('the passes of one window become one Event per kind, sent when the window closes', () => {
    window.add(rotation('a'), [rotated('w1'), started('w3')]);
    jest.advanceTimersByTime(2_000);
    window.add(rotation('a'), [rotated('w2'), started('w4')]);
    jest.advanceTimersByTime(2_999);
    expect(sent).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(sent).toEqual(['a NodeRotated: 2 worker nodes rotated: w1 in 2s, w2 in 2s', 'a NodeStarted: rotating 2 worker nodes (kubelet): w3, w4']);
    // The next pass opens a new window.
    window.add(rotation('a'), [rotated('w3')]);
    jest.advanceTimersByTime(5_000);
    expect(sent.at(-1)).toBe('a NodeRotated: node w3 (worker) rotated in 2s');
  });

  it('flush sends one rotation’s events at once (before its run’s last Event); close sends every rotation’s', () => {
    window.add(rotation('a'), [rotated('w1')]);
    window.add(rotation('b'), [rotated('x1')]);
    window.flush(rotation('a'));
    expect(sent).toEqual(['a NodeRotated: node w1 (worker) rotated in 2s']);
    window.close();
    expect(sent).toEqual(['a NodeRotated: node w1 (worker) rotated in 2s', 'b NodeRotated: node x1 (worker) rotated in 2s']);
    jest.advanceTimersByTime(10_000);
    expect(sent).toHaveLength(2);
  });

  it('a combined Event of one pass carries the events it was made of, so a window can combine them again', () => {
    const [combined] = combineEvents([rotated('w1'), rotated('w2')]);
    expect(combined).toMatchObject({ message: '2 worker nodes rotated: w1 in 2s, w2 in 2s', window: true });
    window.add(rotation('a'), combined!.parts!);
    window.add(rotation('a'), [rotated('w3')]);
    window.close();
    expect(sent).toEqual(['a NodeRotated: 3 worker nodes rotated: w1 in 2s, w2 in 2s, w3 in 2s']);
  });
});
