import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { PeriodicScan } from './periodic.js';

afterEach(() => {
  jest.useRealTimers();
});

describe('PeriodicScan', () => {
  it('scans at start and every interval, never two at once; a failure is reported and the next tick tries again; stop waits for the scan in hand', async () => {
    jest.useFakeTimers();
    let started = 0;
    let finish: (() => void) | undefined;
    const errors: unknown[] = [];
    const scan = () => {
      started++;
      if (started === 2) return Promise.reject(new Error('disk gone'));
      return new Promise<void>((r) => (finish = r));
    };
    const p = new PeriodicScan(scan, (e) => errors.push(e));
    p.start(1000);
    expect(started).toBe(1);
    // The first scan is still running at the next two ticks: no second one beside it.
    await jest.advanceTimersByTimeAsync(2500);
    expect(started).toBe(1);
    finish!();
    await jest.advanceTimersByTimeAsync(1000);
    expect(started).toBe(2);
    expect(errors.map((e) => (e as Error).message)).toEqual(['disk gone']);
    await jest.advanceTimersByTimeAsync(1000);
    expect(started).toBe(3);
    let stopped = false;
    const stopping = p.stop().then(() => (stopped = true));
    await jest.advanceTimersByTimeAsync(5000);
    expect(stopped).toBe(false); // the third scan is in hand
    expect(started).toBe(3); // and no tick starts another
    finish!();
    await stopping;
    expect(stopped).toBe(true);
  });

  it('soon(): a scan at once when none runs; one more right after the one in hand (never two at once); nothing before start or after stop', async () => {
    jest.useFakeTimers();
    let started = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const finishers: (() => void)[] = [];
    const scan = () => {
      started++;
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      return new Promise<void>((r) => finishers.push(() => (inFlight--, r())));
    };
    const p = new PeriodicScan(scan, () => {});
    p.soon();
    expect(started).toBe(0); // not started: no scan
    p.start(60_000);
    expect(started).toBe(1);
    p.soon();
    p.soon();
    expect(started).toBe(1); // asked twice while one runs: one more, after it
    finishers.shift()!();
    await jest.advanceTimersByTimeAsync(0);
    expect(started).toBe(2);
    finishers.shift()!();
    await jest.advanceTimersByTimeAsync(0);
    expect(started).toBe(2);
    p.soon();
    expect(started).toBe(3); // idle: at once
    finishers.shift()!();
    await p.stop();
    p.soon();
    expect(started).toBe(3);
    expect(maxInFlight).toBe(1);
  });
});
