// The reconcile loop end to end against the in-memory fake API server:
// whole runs, crashes between any two writes, stale caches, queueing, pause,
// spec changes, deletion, problems. Invariants are checked over EVERY status
// the controller wrote, not just the final one.
import { nodeRotationName } from '../api/names.js';
import { describe, expect, it } from '@jest/globals';
import type { NodeRotationStatus, NodeRotation } from '../api/noderotation.js';
import { FINALIZER } from '../api/constants.js';
import { isConflict } from '../kube/client.js';
import { CrashError, FakeCluster } from './fake-cluster.js';
import { reconcileRotation } from './reconcile-rotation.js';
import { checkInFlightObjects, checkStatus, plannedCount, rke2Node, runPhases } from './testing.js';

const SERVERS = ['s1', 's2', 's3'];
const WORKERS = ['w1', 'w2', 'w3', 'w4'];

/** `statusHoldMs`: passes may hold their status writes, as in the controller process (status-hold.ts). */
function cluster(statusHoldMs = 0): FakeCluster {
  return new FakeCluster([
    ...SERVERS.map((n) => rke2Node(n, { etcd: true, cp: true })),
    ...WORKERS.map((n) => rke2Node(n)),
  ], { statusHoldMs });
}

type Agent = (nr: NodeRotation) => Partial<NodeRotationStatus> | undefined;
const rotateAll: Agent = () => ({ phase: 'Rotated', step: 'Done', finishedAt: '2026-09-01T10:00:00Z' });

/** Reconcile (swallowing conflicts and simulated crashes like the work queue's retry would) until nothing moves. */
async function drive(fake: FakeCluster, names: string[], agent: Agent | undefined = rotateAll, maxPasses = 200): Promise<void> {
  for (let pass = 0; pass < maxPasses; pass++) {
    const writesBefore = fake.writes.length;
    let agentActed = false;
    let retry = false;
    let heldFor = Infinity;
    for (const name of names) {
      try {
        const r = await reconcileRotation(fake.deps(), name);
        if (r?.requeueAfterMs !== undefined) heldFor = Math.min(heldFor, r.requeueAfterMs);
      } catch (err) {
        if (!(err instanceof CrashError) && !isConflict(err)) throw err;
        retry = true;
      }
      checkInFlightObjects(fake);
    }
    for (const nr of fake.nodeRotationsByName.values()) {
      if (nr.status?.phase !== 'Pending' || !agent) continue;
      const report = agent(nr);
      if (report) {
        fake.report(nr.metadata.name!, report);
        agentActed = true;
      }
    }
    if (!agentActed && !retry && fake.writes.length === writesBefore) {
      // A held write is due within the hold: the work queue would come back then.
      if (fake.runs.statusHoldMs === 0 || heldFor > fake.runs.statusHoldMs) return;
      fake.advance(heldFor);
    }
  }
  throw new Error('did not settle');
}

const phases = (fake: FakeCluster, name: string): Record<string, string> => runPhases(fake, name, [...SERVERS, ...WORKERS]);

function condition(fake: FakeCluster, name: string, type: string) {
  return fake.rotation(name)!.status!.conditions!.find((c) => c.type === type)!;
}

describe.each([0, 1_000])('a whole run, status writes held up to %i ms', (holdMs) => {
  it.each([1, 2, 10])('rotates 3 servers one at a time, then 4 workers %i at a time, and ends Ready', async (maxUnavailable) => {
    const fake = cluster(holdMs);
    fake.apply('all', { strategy: { maxUnavailable } });
    await drive(fake, ['all']);
    const r = fake.rotation('all')!;
    expect(r.status).toMatchObject({ phase: 'Succeeded', progress: '7/7', observedGeneration: 1, runGeneration: 1, distribution: 'rke2' });
    expect(r.status!.current).toBeUndefined();
    expect(r.metadata.finalizers).toEqual([FINALIZER]);
    expect(Object.values(phases(fake, 'all'))).toEqual(Array(7).fill('Rotated'));
    for (const s of fake.statusHistory) checkStatus(s, maxUnavailable);
    // Servers in Rancher's order before any worker; each node instructed exactly once.
    expect(fake.created).toEqual([...SERVERS, ...WORKERS].map((n) => nodeRotationName('all', 1, n)));
    expect(condition(fake, 'all', 'Ready')).toMatchObject({ status: 'True', reason: 'Succeeded', observedGeneration: 1 });
    expect(condition(fake, 'all', 'ServersRotated')).toMatchObject({ status: 'True' });
    expect(condition(fake, 'all', 'WorkersRestarted')).toMatchObject({ status: 'True' });
    const reasons = fake.events.map((e) => e.reason);
    // Every node is named in a NodeStarted and a NodeRotated Event (workers of one pass share one).
    for (const reason of ['NodeStarted', 'NodeRotated']) {
      const messages = fake.events.filter((e) => e.reason === reason).map((e) => e.message);
      for (const node of [...SERVERS, ...WORKERS]) expect(messages.filter((m) => new RegExp(`\\b${node}\\b`).test(m))).toHaveLength(1);
      expect(messages.length).toBeLessThanOrEqual(SERVERS.length + Math.ceil(WORKERS.length / maxUnavailable) * 2);
    }
    expect(reasons[0]).toBe('RunStarted');
    expect(reasons.at(-1)).toBe('RunSucceeded');
  });

  it('writes few times per node: at most one status write per hand-off, one create per node', async () => {
    const fake = cluster(holdMs);
    fake.apply('all', { strategy: { maxUnavailable: 4 } });
    await drive(fake, ['all']);
    const statusWrites = fake.writes.filter((w) => w.startsWith('status')).length;
    const creates = fake.writes.filter((w) => w.startsWith('create')).length;
    expect(creates).toBe(7);
    // start+s1, s1→s2, s2→s3, s3→workers, workers done (batched by the fake agent) = 5; at most one per node + 1.
    expect(statusWrites).toBeLessThanOrEqual(7 + 1);
    expect(fake.writes.length / 7).toBeLessThanOrEqual(3);
  });

  it('a single-service rotation touches only the nodes the service is relevant to', async () => {
    const fake = cluster(holdMs);
    fake.apply('api', { scope: 'Service', service: 'scheduler' });
    await drive(fake, ['api']);
    expect(plannedCount(fake.rotation('api')!.status!)).toBe(SERVERS.length);
    expect(fake.created).toEqual(SERVERS.map((n) => nodeRotationName('api', 1, n)));
    const nr = fake.nodeRotationsByName.get(nodeRotationName('api', 1, 's1'))!;
    expect(nr.spec).toMatchObject({ scope: 'Service', services: ['scheduler'], role: 'etcd,controlplane', generation: 1, runID: 'uid-api-g1' });
    expect(condition(fake, 'api', 'WorkersRestarted')).toMatchObject({ status: 'True', reason: 'NoneInPlan' });
  });

  it('re-reconciling a finished run writes nothing', async () => {
    const fake = cluster(holdMs);
    fake.apply('all');
    await drive(fake, ['all']);
    const writes = fake.writes.length;
    for (let i = 0; i < 3; i++) await reconcileRotation(fake.deps(), 'all');
    expect(fake.writes.length).toBe(writes);
  });
});

describe('held status writes (status-hold.ts)', () => {
  // 3 servers and 24 workers, 4 at a time; one agent reports per pass, 50 ms apart, as real agents that take different times do.
  async function oneReportPerPass(holdMs: number) {
    const workers = Array.from({ length: 24 }, (_, i) => `w${i}`);
    const fake = new FakeCluster([...SERVERS.map((n) => rke2Node(n, { etcd: true, cp: true })), ...workers.map((n) => rke2Node(n))], { statusHoldMs: holdMs });
    fake.apply('all', { strategy: { maxUnavailable: 4 } });
    for (let pass = 0; pass < 500 && fake.rotation('all')!.status?.phase !== 'Succeeded'; pass++) {
      await reconcileRotation(fake.deps(), 'all');
      checkInFlightObjects(fake);
      fake.advance(50);
      const nr = [...fake.nodeRotationsByName.values()].find((n) => n.status?.phase === 'Pending');
      if (nr) fake.report(nr.metadata.name!, { phase: 'Rotated', step: 'Done', finishedAt: '2026-09-01T10:00:00Z' });
    }
    return { fake, nodes: [...SERVERS, ...workers] };
  }

  it('gather a busy worker phase into few writes: the same run, each node started once and named in one start and one finish Event', async () => {
    const held = await oneReportPerPass(1_000);
    const every = await oneReportPerPass(0);
    const statusWrites = (f: FakeCluster) => f.writes.filter((w) => w.startsWith('status')).length;
    for (const { fake, nodes } of [held, every]) {
      expect(fake.rotation('all')!.status).toMatchObject({ phase: 'Succeeded', progress: '27/27' });
      expect([...fake.created].sort()).toEqual(nodes.map((n) => nodeRotationName('all', 1, n)).sort());
      for (const s of fake.statusHistory) checkStatus(s, 4);
      for (const reason of ['NodeStarted', 'NodeRotated']) {
        const messages = fake.events.filter((e) => e.reason === reason).map((e) => e.message);
        for (const node of nodes) expect([reason, node, messages.filter((m) => new RegExp(`\\b${node}\\b`).test(m)).length]).toEqual([reason, node, 1]);
      }
    }
    // Every pass writes (27 hand-offs and more) when not held; held, the worker phase writes when
    // the named window runs low or the hold is up. The servers, one at a time, write at every hand-off.
    expect(statusWrites(every.fake)).toBeGreaterThanOrEqual(27);
    expect(statusWrites(held.fake)).toBeLessThan(statusWrites(every.fake) / 2);
  });
});

describe('restarts and races', () => {
  it.each([0, 1_000])('a crash before ANY single write resumes to the same end: each node once, never two servers in flight (writes held up to %i ms)', async (holdMs) => {
    const reference = cluster(holdMs);
    reference.apply('all', { strategy: { maxUnavailable: 2 } });
    await drive(reference, ['all']);
    const total = reference.writes.length;
    for (let k = 1; k <= total; k++) {
      const fake = cluster(holdMs);
      fake.apply('all', { strategy: { maxUnavailable: 2 } });
      fake.crashAtWrite = k;
      await drive(fake, ['all']);
      expect(fake.rotation('all')!.status!.phase).toBe('Succeeded');
      expect(new Set(fake.created).size).toBe(fake.created.length);
      expect(fake.created).toHaveLength(7);
      for (const s of fake.statusHistory) checkStatus(s, 2);
    }
  });

  it('intent recorded but NodeRotation not created (crash between the two): the next pass creates it', async () => {
    const fake = cluster();
    fake.apply('all');
    fake.crashAtWrite = 3; // 1 finalizer, 2 status (intent for s1), 3 create s1
    await expect(reconcileRotation(fake.deps(), 'all')).rejects.toThrow(CrashError);
    expect(phases(fake, 'all').s1).toBe('Updating');
    expect(fake.nodeRotationsByName.size).toBe(0);
    await reconcileRotation(fake.deps(), 'all');
    expect([...fake.nodeRotationsByName.keys()]).toEqual([nodeRotationName('all', 1, 's1')]);
  });

  it('a pass on a stale cache is refused by the fence and creates nothing', async () => {
    const fake = cluster();
    fake.apply('all');
    await reconcileRotation(fake.deps(), 'all'); // s1 in flight
    const stale = fake.rotation('all')!;
    fake.report(nodeRotationName('all', 1, 's1'), { phase: 'Rotated' });
    await reconcileRotation(fake.deps(), 'all'); // s2 in flight
    // Now a pass that still sees s1 in flight and s1 finished: it would start s2 — or, worse, s3.
    const deps = fake.deps();
    deps.read = { ...fake, rotation: () => structuredClone(stale), rotations: () => [stale], nodeRotationsOf: (n: string) => fake.nodeRotationsOf(n), nodeRotation: (n: string) => fake.nodeRotation(n), nodes: () => fake.nodes(), nodeExists: (n: string) => fake.nodeExists(n) };
    const before = fake.created.length;
    const err = await reconcileRotation(deps, 'all').then(() => undefined, (e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect(fake.created.length).toBe(before);
  });

  it('a stale pass that started the node status named next, then lost its write: the node holds its slot, never two servers', async () => {
    const fake = cluster();
    fake.apply('all');
    await reconcileRotation(fake.deps(), 'all'); // s1 in flight; s2, s3 and the workers named next
    expect(fake.rotation('all')!.status!.nextNodes).toEqual(['s2', 's3', ...WORKERS]);
    const stale = structuredClone(fake.rotation('all')!);
    const staleDeps = () => {
      const deps = fake.deps();
      deps.read = { ...fake, rotation: () => structuredClone(stale), rotations: () => [stale], nodeRotationsOf: (n: string) => fake.nodeRotationsOf(n), nodeRotation: (n: string) => fake.nodeRotation(n), nodes: () => fake.nodes(), nodeExists: (n: string) => fake.nodeExists(n) };
      return deps;
    };
    fake.updateSpec('all', (spec) => (spec.paused = true)); // a person pauses: the stale pass does not know, and its write will be refused
    const refused = (p: Promise<unknown>) => p.then(() => false, (e: unknown) => isConflict(e));
    // Before s1 reports, the stale pass has no slot to fill: nothing is created.
    await reconcileRotation(staleDeps(), 'all');
    expect(fake.created).toEqual([nodeRotationName('all', 1, 's1')]);
    // s1 reports; the stale pass starts s2, which status named next, before its write, which is refused.
    fake.report(nodeRotationName('all', 1, 's1'), { phase: 'Rotated' });
    expect(await refused(reconcileRotation(staleDeps(), 'all'))).toBe(true);
    expect(fake.created).toEqual(['s1', 's2'].map((n) => nodeRotationName('all', 1, n)));
    checkInFlightObjects(fake);
    // The next pass (paused) finds s2's NodeRotation: s2 is in flight, and nothing else starts.
    await reconcileRotation(fake.deps(), 'all');
    expect(phases(fake, 'all')).toMatchObject({ s1: 'Rotated', s2: 'Updating', s3: 'Pending' });
    expect(fake.rotation('all')!.status!.nextNodes).toEqual(['s3', ...WORKERS]);
    // Unpaused, the run goes on from there: each node once, one server at a time.
    fake.updateSpec('all', (spec) => (spec.paused = false));
    await drive(fake, ['all']);
    expect(fake.rotation('all')!.status!.phase).toBe('Succeeded');
    expect(new Set(fake.created).size).toBe(7);
    expect(fake.created).toHaveLength(7);
    for (const st of fake.statusHistory) checkStatus(st, 1);
  });
});

describe('failure', () => {
  it.each<['Rollback' | 'Halt', 'RolledBack' | 'Failed', string]>([
    ['Rollback', 'RolledBack', 'NodeRolledBack'],
    ['Halt', 'Failed', 'NodeFailed'],
  ])('onFailure %s: the failed node stops the run; Stalled names the node and the step', async (onFailure, phase, reason) => {
    const fake = cluster();
    fake.apply('f', { strategy: { onFailure } });
    await drive(fake, ['f'], (nr) =>
      nr.spec.nodeName === 's2' ? { phase, step: 'Verifying', message: 'kube-apiserver did not serve the new certificate' } : { phase: 'Rotated' },
    );
    const r = fake.rotation('f')!;
    expect(r.status!.phase).toBe('Failed');
    expect(phases(fake, 'f')).toMatchObject({ s1: 'Rotated', s2: phase, s3: 'Pending', w1: 'Pending' });
    expect(fake.created).toEqual([nodeRotationName('f', 1, 's1'), nodeRotationName('f', 1, 's2')]);
    const stalled = condition(fake, 'f', 'Stalled');
    expect(stalled).toMatchObject({ status: 'True', reason });
    expect(stalled.message).toContain('node s2 (etcd,controlplane)');
    expect(stalled.message).toContain('at step Verifying');
    expect(condition(fake, 'f', 'Ready').status).toBe('False');
    expect(condition(fake, 'f', 'Reconciling').status).toBe('False');
    expect(fake.events.map((e) => e.reason)).toEqual(expect.arrayContaining([reason, 'RunFailed']));
  });

  it('a node that overruns nodeTimeout is marked Failed (NodeTimeout) with its last step; nothing else starts', async () => {
    const fake = cluster();
    fake.apply('t', { strategy: { nodeTimeout: '1m' } });
    const first = await reconcileRotation(fake.deps(), 't');
    expect(first?.requeueAfterMs).toBeGreaterThan(60_000);
    fake.report(nodeRotationName('t', 1, 's1'), { phase: 'Updating', step: 'Restarting' });
    fake.advance(30_000);
    await reconcileRotation(fake.deps(), 't');
    expect(phases(fake, 't').s1).toBe('Updating');
    fake.advance(31_000);
    await reconcileRotation(fake.deps(), 't');
    const s1 = fake.rotation('t')!.status!.nodes![0]!;
    expect(s1).toMatchObject({ name: 's1', phase: 'Failed', reason: 'NodeTimeout', step: 'Restarting' });
    expect(condition(fake, 't', 'Stalled')).toMatchObject({ status: 'True', reason: 'NodeTimeout' });
    expect(condition(fake, 't', 'Stalled').message).toContain('node s1 (etcd,controlplane) timed out at step Restarting');
    expect(fake.created).toEqual([nodeRotationName('t', 1, 's1')]);
  });
});

describe('spec changes', () => {
  it('pause stops starting nodes (the one in flight finishes); resume continues the same run', async () => {
    const fake = cluster();
    fake.apply('p');
    await reconcileRotation(fake.deps(), 'p'); // s1 in flight
    fake.updateSpec('p', (s) => (s.paused = true));
    await drive(fake, ['p']);
    let r = fake.rotation('p')!;
    expect(r.status).toMatchObject({ phase: 'Paused', progress: '1/7', runGeneration: 1, observedGeneration: 2 });
    expect(condition(fake, 'p', 'Reconciling')).toMatchObject({ status: 'True', reason: 'Paused' });
    expect(fake.created).toEqual([nodeRotationName('p', 1, 's1')]);
    fake.updateSpec('p', (s) => (s.paused = false));
    await drive(fake, ['p']);
    r = fake.rotation('p')!;
    // Same run (generation 1 names), now covering generation 3.
    expect(r.status).toMatchObject({ phase: 'Succeeded', progress: '7/7', runGeneration: 1, observedGeneration: 3 });
    expect(fake.created.every((n) => n.startsWith('p-g1-'))).toBe(true);
    expect(fake.created).toHaveLength(7);
    expect(fake.events.map((e) => e.reason)).toEqual(expect.arrayContaining(['RunPaused', 'RunResumed']));
  });

  it('a spec change after completion starts a new run; re-applying the same spec does not', async () => {
    const fake = cluster();
    fake.apply('again', { scope: 'Service', service: 'etcd' });
    await drive(fake, ['again']);
    expect(fake.created).toHaveLength(3);
    fake.updateSpec('again', (s) => (s.service = 'kubelet'));
    await drive(fake, ['again']);
    const r = fake.rotation('again')!;
    expect(r.status).toMatchObject({ phase: 'Succeeded', runGeneration: 2, observedGeneration: 2, progress: '7/7' });
    expect(fake.created.filter((n) => n.startsWith('again-g2-'))).toHaveLength(7);
  });

  it('changing WHAT is rotated mid-run finishes the running run first, then runs the new spec', async () => {
    const fake = cluster();
    fake.apply('mid', { scope: 'Service', service: 'etcd' });
    await reconcileRotation(fake.deps(), 'mid');
    fake.updateSpec('mid', (s) => (s.service = 'scheduler'));
    await reconcileRotation(fake.deps(), 'mid');
    // Not observed yet: kstatus must not read the old run as the new spec's result.
    expect(fake.rotation('mid')!.status!.observedGeneration).toBe(1);
    await drive(fake, ['mid']);
    expect(fake.rotation('mid')!.status).toMatchObject({ phase: 'Succeeded', runGeneration: 2, observedGeneration: 2 });
    expect(fake.created).toEqual([nodeRotationName('mid', 1, 's1'), nodeRotationName('mid', 1, 's2'), nodeRotationName('mid', 1, 's3'), nodeRotationName('mid', 2, 's1'), nodeRotationName('mid', 2, 's2'), nodeRotationName('mid', 2, 's3')]);
  });

  it('a node added mid-run does not join or reorder the run (the run is the nodes that existed when it started)', async () => {
    const fake = cluster();
    fake.apply('frozen');
    await reconcileRotation(fake.deps(), 'frozen');
    fake.advance(1000);
    // An etcd node sorts first: had it joined, it would be rotated before s2.
    const a0 = rke2Node('a0', { etcd: true });
    a0.metadata!.creationTimestamp = fake.clock;
    fake.nodeList = [a0, ...fake.nodeList];
    await drive(fake, ['frozen']);
    expect(fake.created).toEqual([...SERVERS, ...WORKERS].map((n) => nodeRotationName('frozen', 1, n)));
    expect(plannedCount(fake.rotation('frozen')!.status!)).toBe(7);
    expect(fake.rotation('frozen')!.status).toMatchObject({ phase: 'Succeeded', progress: '7/7' });
  });
});

describe('nodes that go away', () => {
  it('a server deleted while in flight is skipped, the run goes on and ends Succeeded, and the next rotation is not queued behind it', async () => {
    const fake = cluster();
    fake.apply('a', {});
    // The agent of s2 never answers: its node is being deleted.
    const silentOnS2: Agent = (nr) => (nr.spec.nodeName === SERVERS[1] ? undefined : rotateAll(nr));
    await drive(fake, ['a'], silentOnS2);
    expect(phases(fake, 'a')[SERVERS[1]!]).toBe('Updating');
    fake.nodeList = fake.nodeList.filter((n) => n.metadata?.name !== SERVERS[1]);
    await drive(fake, ['a'], silentOnS2);
    const r = fake.rotation('a')!;
    expect(r.status!.phase).toBe('Succeeded');
    expect(r.status!.nodes!.find((n) => n.name === SERVERS[1])).toMatchObject({ phase: 'Skipped', reason: 'NodeDeleted', message: 'the Node was deleted while it was being rotated; its result is not awaited' });
    expect(fake.events.some((e) => e.reason === 'NodeSkipped' && e.message.includes(SERVERS[1]!))).toBe(true);
    fake.apply('b', {});
    await drive(fake, ['b']);
    expect(fake.rotation('b')!.status!.phase).toBe('Succeeded');
  });
});

describe('old NodeRotations', () => {
  it('keep the current and the previous run\'s; older ones are deleted when a run starts', async () => {
    const fake = cluster();
    fake.apply('keep', { scope: 'Service', service: 'etcd' });
    await drive(fake, ['keep']);
    for (const service of ['kubelet', 'etcd', 'kube-proxy']) {
      fake.updateSpec('keep', (s) => (s.service = service));
      await drive(fake, ['keep']);
    }
    const generations = [...new Set([...fake.nodeRotationsByName.values()].map((nr) => nr.spec.generation))].sort();
    expect(fake.rotation('keep')!.status!.runGeneration).toBe(4);
    expect(generations).toEqual([3, 4]);
    expect(fake.writes.filter((w) => w.startsWith('delete noderotations/'))).toHaveLength(SERVERS.length + (SERVERS.length + WORKERS.length));
  });
});

describe('one rotation at a time', () => {
  it('a second rotation waits with Reconciling=True reason Queued, then runs', async () => {
    const fake = cluster();
    fake.apply('first', { scope: 'Service', service: 'etcd' }, new Date('2026-09-01T09:00:00Z'));
    await reconcileRotation(fake.deps(), 'first');
    fake.apply('second', { scope: 'Service', service: 'api-server' }, new Date('2026-09-01T09:01:00Z'));
    await reconcileRotation(fake.deps(), 'second');
    expect(fake.rotation('second')!.status).toMatchObject({ phase: 'Pending', observedGeneration: 1 });
    expect(condition(fake, 'second', 'Reconciling')).toMatchObject({ status: 'True', reason: 'Queued' });
    expect(condition(fake, 'second', 'Reconciling').message).toContain('first');
    let maxRunning = 0;
    for (let i = 0; i < 40; i++) {
      // A fenced write that lost to the other rotation's pass is retried by the queue; anything else is a failure.
      for (const n of ['first', 'second']) {
        await reconcileRotation(fake.deps(), n).catch((e: unknown) => {
          if (!isConflict(e)) throw e;
        });
      }
      const running = fake.rotations().filter((r) => r.status?.phase === 'Progressing').length;
      maxRunning = Math.max(maxRunning, running);
      for (const nr of fake.nodeRotationsByName.values()) if (nr.status?.phase === 'Pending') fake.report(nr.metadata.name!, { phase: 'Rotated' });
    }
    expect(maxRunning).toBe(1);
    expect(fake.rotation('first')!.status!.phase).toBe('Succeeded');
    expect(fake.rotation('second')!.status!.phase).toBe('Succeeded');
    expect(fake.events.some((e) => e.reason === 'Queued')).toBe(true);
  });

  it('a Plan-mode rotation takes no slot and never waits; its checks do not hold the slot either', async () => {
    const fake = cluster();
    fake.apply('busy');
    await reconcileRotation(fake.deps(), 'busy');
    fake.apply('preview', { mode: 'Plan' });
    await reconcileRotation(fake.deps(), 'preview');
    expect(condition(fake, 'preview', 'Reconciling')).toMatchObject({ status: 'True', reason: 'Planning' });

    // The other way round: a plan with unanswered checks, then an Apply rotation starts at once.
    const other = cluster();
    other.apply('preview', { mode: 'Plan' });
    await reconcileRotation(other.deps(), 'preview');
    expect([...other.nodeRotationsByName.values()].every((nr) => nr.spec.action === 'Check' && (nr.status?.phase ?? 'Pending') === 'Pending')).toBe(true);
    other.apply('now');
    await reconcileRotation(other.deps(), 'now');
    expect(other.rotation('now')!.status!.phase).toBe('Progressing');
  });
});

describe('problems a person must fix', () => {
  it.each<[string, FakeCluster, Parameters<FakeCluster['apply']>[1], string, string]>([
    ['an RKE service on detected RKE2', cluster(), { scope: 'Service', service: 'kube-apiserver' }, 'ServiceNotInDistribution', 'spec.service "kube-apiserver" is not a service of rke2'],
    ['no nodes at all', new FakeCluster([]), {}, 'DistributionUnknown', 'no nodes to detect the distribution from'],
    ['a selector matching nothing', cluster(), { strategy: { nodeSelector: { matchLabels: { pool: 'none' } } } }, 'NoNodesSelected', ''],
    [
      'a Plan-mode preview of more nodes than its status.plan holds (5,001): refused at once, not a 422 on every write',
      new FakeCluster([...SERVERS.map((n) => rke2Node(n, { etcd: true, cp: true })), ...Array.from({ length: 4998 }, (_, i) => rke2Node(`w-${i}`))]),
      { mode: 'Plan' },
      'PlanTooLarge',
      '5001 nodes selected; a Plan-mode rotation covers at most 5000 (the size of its status.plan). Split the cluster with spec.strategy.nodeSelector',
    ],
  ])('%s: Stalled=True with reason and message, nothing created', async (_name, fake, spec, reason, message) => {
    fake.apply('bad', spec);
    await reconcileRotation(fake.deps(), 'bad');
    const stalled = condition(fake, 'bad', 'Stalled');
    expect(stalled).toMatchObject({ status: 'True', reason, observedGeneration: 1 });
    expect(stalled.message).toContain(message);
    expect(fake.rotation('bad')!.status!.phase).toBe('Failed');
    expect(fake.nodeRotationsByName.size).toBe(0);
    const writes = fake.writes.length;
    await reconcileRotation(fake.deps(), 'bad');
    expect(fake.writes.length).toBe(writes);
  });
});

describe('Plan mode', () => {
  const notAfter: Record<string, string> = { s1: '2027-05-01T00:00:00Z', s2: '2027-02-01T00:00:00Z', s3: '2027-06-01T00:00:00Z' };
  const check = (nr: NodeRotation): Partial<NodeRotationStatus> => ({
    phase: 'Checked',
    files: nr.spec.services.map((service, i) => ({
      service,
      path: `/var/lib/rancher/rke2/${nr.spec.nodeName}/${service}.crt`,
      oldSerial: '0A',
      notAfter: i === 0 ? (notAfter[nr.spec.nodeName] ?? '2027-09-01T00:00:00Z') : '2027-10-01T00:00:00Z',
    })),
  });

  it('asks every planned node for a read-only check, then publishes the plan, the files and the earliest notAfter per service', async () => {
    const fake = cluster();
    fake.apply('plan', { mode: 'Plan', strategy: { maxUnavailable: 2 } });
    await reconcileRotation(fake.deps(), 'plan');
    let r = fake.rotation('plan')!;
    expect(r.status).toMatchObject({ phase: 'Pending', progress: '0/7', distribution: 'rke2', observedGeneration: 1 });
    expect(condition(fake, 'plan', 'Reconciling')).toMatchObject({ status: 'True', reason: 'Planning' });
    expect(r.status!.plan!.nodes.map((n) => [n.name, n.batch])).toEqual([
      ['s1', 0], ['s2', 1], ['s3', 2], ['w1', 3], ['w2', 3], ['w3', 4], ['w4', 4],
    ]);
    expect(r.status!.plan!.nodes[3]!.services).toEqual(expect.arrayContaining(['kubelet', 'kube-proxy']));
    expect(r.status!.plan!.nodes[3]!.services).not.toContain('etcd');
    // Intent first: the plan was written before the checks were created, all of them at once.
    expect(fake.writes[0]).toMatch(/^status/);
    expect(fake.created).toEqual([...SERVERS, ...WORKERS].map((n) => nodeRotationName('plan', 1, n)));
    for (const nr of fake.nodeRotationsByName.values()) expect(nr.spec).toMatchObject({ action: 'Check', generation: 1 });
    expect(r.metadata.finalizers ?? []).toEqual([]);

    for (const nr of fake.nodeRotationsByName.values()) fake.report(nr.metadata.name!, check(nr));
    await reconcileRotation(fake.deps(), 'plan');
    r = fake.rotation('plan')!;
    expect(r.status).toMatchObject({ phase: 'Planned', progress: '7/7' });
    expect(r.status!.plan!.earliestExpiry![0]).toEqual({ service: r.status!.plan!.nodes[1]!.services[0], notAfter: '2027-02-01T00:00:00Z', node: 's2', path: `/var/lib/rancher/rke2/s2/${r.status!.plan!.nodes[1]!.services[0]}.crt` });
    expect(r.status!.plan!.nodes[0]!.files).toEqual(r.status!.plan!.nodes[0]!.services.map((svc) => `/var/lib/rancher/rke2/s1/${svc}.crt`));
    const ready = condition(fake, 'plan', 'Ready');
    expect(ready).toMatchObject({ status: 'True', reason: 'Planned' });
    expect(ready.message).toContain('earliest notAfter 2027-02-01T00:00:00Z');
    expect(ready.message).toContain('on s2');
    expect(fake.events.filter((e) => e.reason === 'Planned')).toHaveLength(1);
    // Nothing but the checks was ever created, and a settled plan writes nothing more.
    expect(fake.created).toHaveLength(7);
    const writes = fake.writes.length;
    await reconcileRotation(fake.deps(), 'plan');
    expect(fake.writes.length).toBe(writes);
  });

  it('feeds the certificate_not_after metric: as found for a plan, as renewed for a run', async () => {
    const fake = cluster();
    const seen: string[] = [];
    const deps = () => ({ ...fake.deps(), metrics: { certificateNotAfter: (node: string, service: string, t: number) => void seen.push(`${node}/${service}=${t}`) } });
    fake.apply('plan', { mode: 'Plan', scope: 'Service', service: 'etcd' });
    await reconcileRotation(deps(), 'plan');
    for (const nr of fake.nodeRotationsByName.values()) fake.report(nr.metadata.name!, check(nr));
    await reconcileRotation(deps(), 'plan');
    const t = (iso: string): number => Date.parse(iso) / 1000;
    expect(seen.sort()).toEqual([`s1/etcd=${t(notAfter.s1!)}`, `s2/etcd=${t(notAfter.s2!)}`, `s3/etcd=${t(notAfter.s3!)}`]);

    seen.length = 0;
    fake.apply('run', { scope: 'Service', service: 'etcd' });
    await reconcileRotation(deps(), 'run');
    fake.report(nodeRotationName('run', 1, 's1'), { phase: 'Rotated', files: [
      { service: 'etcd', path: '/x', newNotAfter: '2027-11-01T00:00:00Z' },
      { service: 'etcd', path: '/y', newNotAfter: '2027-10-01T00:00:00Z' },
    ] });
    await reconcileRotation(deps(), 'run');
    expect(seen).toEqual([`s1/etcd=${t('2027-10-01T00:00:00Z')}`]);
  });

  it('a node that never answers: Planned once nodeTimeout passed, naming it; a failed check is named too', async () => {
    const fake = cluster();
    fake.apply('plan', { mode: 'Plan', strategy: { nodeTimeout: '2m' } });
    const first = await reconcileRotation(fake.deps(), 'plan');
    expect(first?.requeueAfterMs).toBe(121_000);
    for (const nr of fake.nodeRotationsByName.values()) {
      if (nr.spec.nodeName === 'w4') continue;
      fake.report(nr.metadata.name!, nr.spec.nodeName === 'w3' ? { phase: 'Failed', message: 'node w3: check failed: no data dir' } : check(nr));
    }
    await reconcileRotation(fake.deps(), 'plan');
    expect(fake.rotation('plan')!.status).toMatchObject({ phase: 'Pending', progress: '6/7' });
    fake.advance(121_000);
    await reconcileRotation(fake.deps(), 'plan');
    expect(fake.rotation('plan')!.status).toMatchObject({ phase: 'Planned', progress: '6/7' });
    const ready = condition(fake, 'plan', 'Ready');
    expect(ready.message).toContain('could not read the certificates on w3');
    expect(ready.message).toContain('no answer within spec.strategy.nodeTimeout from w4');
  });

  it('a crash between the plan write and the checks: the next pass creates them, once', async () => {
    const fake = cluster();
    fake.apply('plan', { mode: 'Plan' });
    fake.crashAtWrite = 2; // the first create
    await expect(reconcileRotation(fake.deps(), 'plan')).rejects.toThrow('simulated crash');
    await reconcileRotation(fake.deps(), 'plan');
    expect(fake.created.sort()).toEqual([...SERVERS, ...WORKERS].map((n) => nodeRotationName('plan', 1, n)).sort());
  });
});

describe('deletion mid-run', () => {
  it('waits for the node in flight, then deletes every NodeRotation and releases the finalizer', async () => {
    const fake = cluster();
    fake.apply('del');
    await reconcileRotation(fake.deps(), 'del');
    fake.report(nodeRotationName('del', 1, 's1'), { phase: 'Rotated' });
    await reconcileRotation(fake.deps(), 'del'); // s2 in flight
    fake.report(nodeRotationName('del', 1, 's2'), { phase: 'Updating', step: 'Restarting' });
    fake.deleteRotation('del');
    const wait = await reconcileRotation(fake.deps(), 'del');
    expect(wait?.requeueAfterMs).toBeGreaterThan(0);
    expect(fake.rotation('del')).toBeDefined();
    expect(condition(fake, 'del', 'Reconciling')).toMatchObject({ reason: 'FinishingInFlight' });
    expect(condition(fake, 'del', 'Reconciling').message).toContain('s2');
    expect(fake.created).toEqual([nodeRotationName('del', 1, 's1'), nodeRotationName('del', 1, 's2')]); // nothing new starts
    fake.report(nodeRotationName('del', 1, 's2'), { phase: 'Rotated' });
    await reconcileRotation(fake.deps(), 'del');
    expect(fake.rotation('del')).toBeUndefined();
    expect(fake.nodeRotationsByName.size).toBe(0);
  });

  it('an agent that never answers blocks deletion only until nodeTimeout', async () => {
    const fake = cluster();
    fake.apply('dead', { strategy: { nodeTimeout: '2m' } });
    await reconcileRotation(fake.deps(), 'dead');
    fake.deleteRotation('dead');
    await reconcileRotation(fake.deps(), 'dead');
    expect(fake.rotation('dead')).toBeDefined();
    fake.advance(121_000);
    await reconcileRotation(fake.deps(), 'dead');
    expect(fake.rotation('dead')).toBeUndefined();
    expect(fake.nodeRotationsByName.size).toBe(0);
  });
});
