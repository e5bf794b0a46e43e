// Leader election against an in-memory Lease store that enforces
// resourceVersion like the API server (409 on a stale replace). Short
// durations and real timers; the real API server is exercised in
// test/e2e/leader-election.e2e.test.ts.
import { afterEach, describe, expect, it } from '@jest/globals';
import { ApiException, type V1Lease } from '@kubernetes/client-node';
import { LeaderElector, type LeaseClient } from './leader-election.js';

class LeaseStore {
  lease: V1Lease | undefined;
  private rv = 0;
  writes = 0;
  conflicts = 0;

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
        return copy(this.lease);
      },
    } as unknown as LeaseClient;
  }

  holder(): string | undefined {
    return this.lease?.spec?.holderIdentity;
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
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

afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
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
    await done; // run() resolves when leadership is lost
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
    await a.stop();
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
    await a.stop();
    expect(store.holder()).toBeUndefined();
    expect(store.lease?.spec?.leaseDurationSeconds).toBe(1);
    const releasedAt = performance.now();
    await waitFor('b leads', () => b.isLeader(), 2000);
    expect(performance.now() - releasedAt).toBeLessThan(300);
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
    await b.stop();
    expect(events).toEqual(['a:start']);
    await sleep(150);
    expect(store.holder()).toBe('a');
    expect(store.writes).toBeGreaterThan(writes); // only a's renewals
  });
});
