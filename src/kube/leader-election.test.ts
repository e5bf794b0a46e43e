// Leader election against an in-memory Lease store that enforces
// resourceVersion like the API server (409 on a stale replace). Short
// durations on jest's fake clock (setTimeout, Date and performance.now), so
// every "not before" and "within" below is exact rather than a race with a
// loaded machine; the real API server and real time are exercised in
// test/e2e/leader-election.e2e.test.ts.
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { ApiException, type V1Lease } from '@kubernetes/client-node';
import { LeaderElector, type LeaseClient } from './leader-election.js';

class LeaseStore {
  lease: V1Lease | undefined;
  private rv = 0;
  writes = 0;
  conflicts = 0;
  /** Every accepted write: who holds the Lease after it, for how long, and when (fake time). */
  readonly history: { holder: string | undefined; seconds: number | undefined; at: number }[] = [];

  client(opts: { failing?: () => boolean } = {}): LeaseClient {
    const fail = (): void => {
      if (opts.failing?.()) throw new ApiException(503, 'unavailable', '{}', {});
    };
    const copy = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
    return {
      readNamespacedLease: async () => {
        await tick();
        fail();
        if (!this.lease) throw new ApiException(404, 'not found', '{"reason":"NotFound"}', {});
        return copy(this.lease);
      },
      createNamespacedLease: async ({ body }: { body: V1Lease }) => {
        await tick();
        fail();
        if (this.lease) {
          this.conflicts++;
          throw new ApiException(409, 'exists', '{"reason":"AlreadyExists"}', {});
        }
        this.writes++;
        this.lease = { ...copy(body), metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
        this.history.push({ holder: this.lease.spec?.holderIdentity || undefined, seconds: this.lease.spec?.leaseDurationSeconds, at: performance.now() });
        return copy(this.lease);
      },
      replaceNamespacedLease: async ({ body }: { body: V1Lease }) => {
        await tick();
        fail();
        if (!this.lease || body.metadata?.resourceVersion !== this.lease.metadata?.resourceVersion) {
          this.conflicts++;
          throw new ApiException(409, 'conflict', '{"reason":"Conflict"}', {});
        }
        this.writes++;
        this.lease = { ...copy(body), metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
        this.history.push({ holder: this.lease.spec?.holderIdentity || undefined, seconds: this.lease.spec?.leaseDurationSeconds, at: performance.now() });
        return copy(this.lease);
      },
    } as unknown as LeaseClient;
  }

  holder(): string | undefined {
    return this.lease?.spec?.holderIdentity;
  }
}

// Each API call takes 1 ms of (fake) time, as a round trip would take some.
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));
// Time passes only when a test says so.
const sleep = async (ms: number): Promise<void> => void (await jest.advanceTimersByTimeAsync(ms));
/** Lets fake time pass in 5 ms steps until `p` settles (at most `maxMs`). */
async function settle<T>(p: Promise<T>, maxMs = 5_000): Promise<T> {
  let state: { ok: true; value: T } | { ok: false; err: unknown } | undefined;
  p.then((value) => (state = { ok: true, value }), (err: unknown) => (state = { ok: false, err }));
  for (let waited = 0; !state; waited += 5) {
    if (waited > maxMs) throw new Error(`did not settle within ${maxMs} ms of fake time`);
    await sleep(5);
  }
  if (!state.ok) throw state.err;
  return state.value;
}
async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  for (let waited = 0; !cond(); waited += 5) {
    if (waited > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// Lease durations are whole seconds on the wire, so 1 s is the shortest real lease.
const FAST = { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 100 };
const running: LeaderElector[] = [];
function elector(store: LeaseStore, identity: string, events: string[], extra: Partial<ConstructorParameters<typeof LeaderElector>[0]> = {}): LeaderElector {
  const e = new LeaderElector({
    client: store.client(),
    namespace: 'ns',
    name: 'lock',
    identity,
    ...FAST,
    onStartedLeading: () => void events.push(`${identity}:start`),
    onStoppedLeading: (reason) => void events.push(`${identity}:stop:${reason}`),
    ...extra,
  });
  running.push(e);
  return e;
}

beforeEach(() => {
  jest.useFakeTimers();
});

afterEach(async () => {
  await settle(Promise.all(running.splice(0).map((e) => e.stop())));
  jest.useRealTimers();
});

describe('LeaderElector', () => {
  it('refuses timings that would let a leader act after its lease expired elsewhere', () => {
    const store = new LeaseStore();
    const base = { client: store.client(), namespace: 'ns', name: 'l', onStartedLeading: () => {} };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(/leaseDuration/);
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(/renewDeadline/);
    const d = new LeaderElector(base);
    expect([d.leaseDurationMs, d.renewDeadlineMs, d.retryPeriodMs]).toEqual([15_000, 10_000, 2_000]);
  });

  it('elects exactly one of several candidates and keeps renewing', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const candidates = ['a', 'b', 'c'].map((id) => elector(store, id, events));
    candidates.forEach((c) => void c.run());
    await waitFor('a leader', () => candidates.some((c) => c.isLeader()));
    await sleep(FAST.leaseDurationMs * 2);
    const leaders = candidates.filter((c) => c.isLeader());
    expect(leaders).toHaveLength(1);
    expect(store.holder()).toBe(leaders[0]!.identity);
    expect(events).toEqual([`${leaders[0]!.identity}:start`]);
    // renewals happened: several writes beyond the acquire
    expect(store.writes).toBeGreaterThan(5);
    for (const c of candidates) expect(c.leader()).toBe(leaders[0]!.identity);
  });

  it('a standby takes over after the leader vanishes without releasing, only once the lease expired', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    let aDead = false;
    const a = elector(store, 'a', events, { client: store.client({ failing: () => aDead }) });
    void a.run();
    await waitFor('a leads', () => a.isLeader());
    const b = elector(store, 'b', events);
    void b.run();
    await sleep(300);
    expect(b.isLeader()).toBe(false);
    // "SIGKILL": a stops talking to the API server, holding the lease.
    aDead = true;
    const killedAt = performance.now();
    await waitFor('b leads', () => b.isLeader(), 3000);
    const takeover = performance.now() - killedAt;
    // not before the lease could have expired on b's clock, and not much later
    expect(takeover).toBeGreaterThan(FAST.leaseDurationMs - FAST.retryPeriodMs);
    expect(takeover).toBeLessThan(FAST.leaseDurationMs + 2 * FAST.retryPeriodMs);
    expect(store.holder()).toBe('b');
    expect(store.lease?.spec?.leaseTransitions).toBe(1);
  });

  it('the leader gives up after the renew deadline when it cannot renew, before the lease expires', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    let down = false;
    let stoppedAt = 0;
    const a = elector(store, 'a', events, {
      client: store.client({ failing: () => down }),
      onStoppedLeading: (reason) => {
        stoppedAt = performance.now();
        events.push(`a:stop:${reason}`);
      },
    });
    const done = a.run();
    await waitFor('a leads', () => a.isLeader());
    await sleep(150); // let at least one renewal happen
    const lastWrite = store.lease!.spec!.renewTime as unknown as string;
    down = true;
    const downAt = performance.now();
    await settle(done); // run() resolves when leadership is lost
    expect(events).toEqual(['a:start', 'a:stop:lost']);
    expect(a.isLeader()).toBe(false);
    // gave up within the renew deadline (+ one retry) and before the lease duration
    const gaveUpAfter = stoppedAt - downAt;
    expect(gaveUpAfter).toBeLessThanOrEqual(FAST.renewDeadlineMs + FAST.retryPeriodMs);
    expect(gaveUpAfter).toBeLessThan(FAST.leaseDurationMs);
    expect(store.lease!.spec!.renewTime as unknown as string).toBe(lastWrite);
  });

  it('aborts the signal passed to onStartedLeading when leadership ends', async () => {
    const store = new LeaseStore();
    let signal: AbortSignal | undefined;
    const a = elector(store, 'a', [], { onStartedLeading: (s) => void (signal = s) });
    void a.run();
    await waitFor('a leads', () => a.isLeader());
    expect(signal?.aborted).toBe(false);
    await settle(a.stop());
    expect(signal?.aborted).toBe(true);
  });

  it('stop() releases the lease so a standby takes over at its next attempt', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = elector(store, 'a', events);
    void a.run();
    await waitFor('a leads', () => a.isLeader());
    const b = elector(store, 'b', events, { retryPeriodMs: 100, leaseDurationMs: 60_000, renewDeadlineMs: 600 });
    void b.run();
    await sleep(200);
    await settle(a.stop());
    await waitFor('b leads', () => b.isLeader(), 2000);
    // a's last write released the Lease (no holder, 1 s); b's next write took it, within one retry period.
    const release = store.history.findIndex((h) => h.holder === undefined);
    expect(store.history[release - 1]!.holder).toBe('a');
    expect(store.history[release]!.seconds).toBe(1);
    expect(store.history[release + 1]!.holder).toBe('b');
    expect(store.history[release + 1]!.at - store.history[release]!.at).toBeLessThanOrEqual(100 + 5);
    expect(events).toEqual(['a:start', 'a:stop:stopped', 'b:start']);
  });

  it('a candidate that never led calls no callbacks on stop and writes nothing', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = elector(store, 'a', events);
    void a.run();
    await waitFor('a leads', () => a.isLeader());
    const b = elector(store, 'b', events);
    void b.run();
    await sleep(250);
    const writes = store.writes;
    await settle(b.stop());
    expect(events).toEqual(['a:start']);
    await sleep(150);
    expect(store.holder()).toBe('a');
    expect(store.writes).toBeGreaterThan(writes); // only a's renewals
  });
});
