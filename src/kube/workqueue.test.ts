import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { ExponentialBackoffRateLimiter, WorkQueue } from './workqueue.js';

/** A promise with its resolve exposed, to hold a reconcile open. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** Lets pending promise callbacks (microtasks) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

afterEach(() => {
  jest.useRealTimers();
});

describe('WorkQueue basics', () => {
  it('de-duplicates a key added many times before it is taken', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.len()).toBe(0);
  });

  it('hands out keys in FIFO order', async () => {
    const q = new WorkQueue();
    for (const k of ['c', 'a', 'b']) q.add(k);
    const got = [await q.get(), await q.get(), await q.get()];
    expect(got).toEqual(['c', 'a', 'b']);
  });

  it('parks a key added while it is processed and queues it again on done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    expect(key).toBe('a');
    q.add('a');
    // not handed out while a worker holds it
    expect(q.len()).toBe(0);
    q.add('a'); // still collapses into one
    q.done('a');
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    expect(q.len()).toBe(0);
  });

  it('wakes a blocked get() when a key arrives', async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.add('x');
    await expect(pending).resolves.toBe('x');
    expect(q.inFlight()).toBe(1);
  });

  it('resolves blocked get() with undefined on shutdown and ignores later adds', async () => {
    const q = new WorkQueue();
    const pending = q.get();
    await q.shutDown();
    await expect(pending).resolves.toBeUndefined();
    q.add('late');
    expect(q.len()).toBe(0);
    await expect(q.get()).resolves.toBeUndefined();
  });
});

describe('ExponentialBackoffRateLimiter', () => {
  it('doubles from the base per failure up to the cap, per key, and forget resets', () => {
    const rl = new ExponentialBackoffRateLimiter(1000, 300_000);
    const delays = Array.from({ length: 12 }, () => rl.when('k'));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000, 300000]);
    expect(rl.retries('k')).toBe(12);
    expect(rl.when('other')).toBe(1000);
    rl.forget('k');
    expect(rl.retries('k')).toBe(0);
    expect(rl.when('k')).toBe(1000);
  });

  it('stays at the cap after very many failures (no overflow)', () => {
    const rl = new ExponentialBackoffRateLimiter(1000, 300_000);
    for (let i = 0; i < 2000; i++) rl.when('k');
    expect(rl.when('k')).toBe(300_000);
  });

  it('rejects a nonsensical configuration', () => {
    expect(() => new ExponentialBackoffRateLimiter(0, 10)).toThrow(/invalid backoff/);
    expect(() => new ExponentialBackoffRateLimiter(100, 10)).toThrow(/invalid backoff/);
  });
});

describe('WorkQueue delays (fake timers)', () => {
  it('addAfter adds the key only when the delay has passed', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue();
    q.addAfter('a', 5000);
    expect(q.len()).toBe(0);
    expect(q.waitingLen()).toBe(1);
    jest.advanceTimersByTime(4999);
    expect(q.len()).toBe(0);
    jest.advanceTimersByTime(1);
    expect(q.len()).toBe(1);
    expect(q.waitingLen()).toBe(0);
  });

  it('addAfter keeps the earliest deadline for a key', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue();
    q.addAfter('a', 10_000);
    q.addAfter('a', 2_000); // earlier wins
    q.addAfter('a', 60_000); // later is ignored
    expect(q.waitingLen()).toBe(1);
    jest.advanceTimersByTime(2_000);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    jest.advanceTimersByTime(60_000);
    // neither the replaced 10 s nor the ignored 60 s timer fires again
    expect(q.len()).toBe(0);
  });

  it('addAfter with zero or negative delay adds immediately', () => {
    const q = new WorkQueue();
    q.addAfter('a', 0);
    q.addAfter('b', -5);
    expect(q.len()).toBe(2);
  });

  it('addRateLimited backs off exponentially per key and forget resets it', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue({ rateLimiter: new ExponentialBackoffRateLimiter(1000, 4000) });
    const readyAfter = async (ms: number): Promise<void> => {
      jest.advanceTimersByTime(ms - 1);
      expect(q.len()).toBe(0);
      jest.advanceTimersByTime(1);
      expect(q.len()).toBe(1);
      expect(await q.get()).toBe('k');
      q.done('k');
    };
    for (const expected of [1000, 2000, 4000, 4000]) {
      q.addRateLimited('k');
      await readyAfter(expected);
    }
    expect(q.numRequeues('k')).toBe(4);
    q.forget('k');
    expect(q.numRequeues('k')).toBe(0);
    q.addRateLimited('k');
    await readyAfter(1000);
  });

  it('shutDown cancels delayed adds', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue();
    q.addAfter('a', 1000);
    q.addRateLimited('b');
    await q.shutDown();
    jest.advanceTimersByTime(10 * 60 * 1000);
    expect(q.len()).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('WorkQueue.run (controller-runtime contract)', () => {
  it('never reconciles one key in two workers at once, and re-runs it for an add during processing', async () => {
    // Fake time: "nothing more happened in 30 ms" is then a fact, not a race with a loaded machine.
    jest.useFakeTimers();
    const q = new WorkQueue();
    const active = new Map<string, number>();
    let maxConcurrentSameKey = 0;
    let maxConcurrentTotal = 0;
    const calls: string[] = [];
    const hold = gate();
    const running = q.run(4, async (key) => {
      calls.push(key);
      active.set(key, (active.get(key) ?? 0) + 1);
      maxConcurrentSameKey = Math.max(maxConcurrentSameKey, active.get(key)!);
      maxConcurrentTotal = Math.max(maxConcurrentTotal, [...active.values()].reduce((a, b) => a + b, 0));
      if (key === 'a' && calls.filter((c) => c === 'a').length === 1) await hold.promise;
      await new Promise((r) => setTimeout(r, 5));
      active.set(key, active.get(key)! - 1);
    });
    q.add('a');
    q.add('b');
    await flush();
    // 'a' is held open: adding it again must not start a second reconcile of 'a'
    q.add('a');
    q.add('a');
    await jest.advanceTimersByTimeAsync(30);
    expect(calls.filter((c) => c === 'a')).toHaveLength(1);
    expect(calls).toContain('b');
    hold.open();
    // exactly one more reconcile of 'a' for the two adds made during processing, and no third after 100 ms more
    await jest.advanceTimersByTimeAsync(100);
    expect(calls.filter((c) => c === 'a')).toHaveLength(2);
    expect(maxConcurrentSameKey).toBe(1);
    expect(maxConcurrentTotal).toBe(2);
    await q.shutDown();
    await running;
  });

  it('uses all workers for distinct keys', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue();
    let active = 0;
    let peak = 0;
    const done: string[] = [];
    const running = q.run(3, async (key) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 20));
      active--;
      done.push(key);
    });
    for (const k of ['a', 'b', 'c', 'd', 'e', 'f']) q.add(k);
    // Each reconcile takes 20 ms of fake time: two rounds of three.
    await jest.advanceTimersByTimeAsync(20);
    expect(done).toHaveLength(3);
    await jest.advanceTimersByTimeAsync(20);
    expect(peak).toBe(3);
    expect(done.sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    await q.shutDown();
    await running;
  });

  it('retries a throwing reconcile with growing backoff and forgets it after success', async () => {
    jest.useFakeTimers();
    const errors: [string, number][] = [];
    const q = new WorkQueue({
      rateLimiter: new ExponentialBackoffRateLimiter(1000, 300_000),
      hooks: { onError: (key, _err, retries) => errors.push([key, retries]) },
    });
    let attempts = 0;
    const running = q.run(1, async () => {
      attempts++;
      if (attempts <= 3) throw new Error(`boom ${attempts}`);
    });
    q.add('k');
    await jest.advanceTimersByTimeAsync(0);
    expect(attempts).toBe(1);
    await jest.advanceTimersByTimeAsync(999);
    expect(attempts).toBe(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(attempts).toBe(2);
    await jest.advanceTimersByTimeAsync(1999);
    expect(attempts).toBe(2);
    await jest.advanceTimersByTimeAsync(1);
    expect(attempts).toBe(3);
    expect(q.numRequeues('k')).toBe(3);
    await jest.advanceTimersByTimeAsync(4000);
    expect(attempts).toBe(4); // succeeded
    expect(q.numRequeues('k')).toBe(0);
    expect(errors).toEqual([['k', 0], ['k', 1], ['k', 2]]);
    // nothing else scheduled after success
    await jest.advanceTimersByTimeAsync(600_000);
    expect(attempts).toBe(4);
    await q.shutDown();
    await running;
  });

  it('requeues after requeueAfterMs without counting a failure', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue();
    let attempts = 0;
    const running = q.run(1, async () => {
      attempts++;
      return attempts < 3 ? { requeueAfterMs: 30_000 } : undefined;
    });
    q.add('k');
    await jest.advanceTimersByTimeAsync(0);
    expect(attempts).toBe(1);
    await jest.advanceTimersByTimeAsync(29_999);
    expect(attempts).toBe(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(attempts).toBe(2);
    expect(q.numRequeues('k')).toBe(0);
    await jest.advanceTimersByTimeAsync(30_000);
    expect(attempts).toBe(3);
    await jest.advanceTimersByTimeAsync(300_000);
    expect(attempts).toBe(3);
    await q.shutDown();
    await running;
  });

  it('an event during a requeueAfter wait reconciles at once, not after the delay', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue();
    let attempts = 0;
    const running = q.run(1, async () => {
      attempts++;
      return { requeueAfterMs: 60_000 };
    });
    q.add('k');
    await jest.advanceTimersByTimeAsync(0);
    expect(attempts).toBe(1);
    q.add('k');
    await jest.advanceTimersByTimeAsync(0);
    expect(attempts).toBe(2);
    await q.shutDown();
    await running;
  });

  it('requeue: true is a rate-limited retry', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue({ rateLimiter: new ExponentialBackoffRateLimiter(500, 10_000) });
    let attempts = 0;
    const running = q.run(1, async () => {
      attempts++;
      return attempts < 3 ? { requeue: true } : undefined;
    });
    q.add('k');
    await jest.advanceTimersByTimeAsync(0);
    await jest.advanceTimersByTimeAsync(500);
    expect(attempts).toBe(2);
    await jest.advanceTimersByTimeAsync(999);
    expect(attempts).toBe(2);
    await jest.advanceTimersByTimeAsync(1);
    expect(attempts).toBe(3);
    expect(q.numRequeues('k')).toBe(0);
    await q.shutDown();
    await running;
  });

  it('shutDown waits for the reconcile in flight and does not start queued keys', async () => {
    jest.useFakeTimers();
    const q = new WorkQueue();
    const hold = gate();
    const started: string[] = [];
    let finished = false;
    const running = q.run(1, async (key) => {
      started.push(key);
      await hold.promise;
      finished = true;
    });
    q.add('a');
    q.add('b');
    await flush();
    expect(started).toEqual(['a']);
    let shutDownResolved = false;
    const stopping = q.shutDown().then(() => (shutDownResolved = true));
    // However long (fake) time runs, shutDown waits for the held reconcile.
    await jest.advanceTimersByTimeAsync(60_000);
    expect(shutDownResolved).toBe(false);
    hold.open();
    await stopping;
    await running;
    expect(finished).toBe(true);
    expect(started).toEqual(['a']);
  });

  it('reports outcomes and durations to the hooks', async () => {
    jest.useFakeTimers();
    const outcomes: string[] = [];
    const adds: string[] = [];
    const q = new WorkQueue({
      rateLimiter: new ExponentialBackoffRateLimiter(10, 10),
      hooks: { onAdd: (k) => adds.push(k), onReconcile: (_k, outcome, ms) => outcomes.push(`${outcome}:${ms >= 0}`) },
    });
    let n = 0;
    const running = q.run(1, async () => {
      n++;
      if (n === 1) throw new Error('x');
    });
    q.add('k');
    await flush();
    expect(n).toBe(1);
    await jest.advanceTimersByTimeAsync(10); // the one backoff step
    expect(n).toBe(2);
    await q.shutDown();
    await running;
    expect(outcomes).toEqual(['error:true', 'success:true']);
    expect(adds).toEqual(['k', 'k']);
  });
});
