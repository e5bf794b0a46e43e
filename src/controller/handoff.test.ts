// The hand-off path against the in-memory API server: it fills a slot a report
// freed with the node status named next, before any pass, and is run here after
// every report and while every status write is in flight. Whatever it does,
// the objects agents act on never hold two servers, nor more than
// maxUnavailable workers, and every node is created once.
import { describe, expect, it } from '@jest/globals';
import { nodeRotationName } from '../api/names.js';
import type { CertificateRotation, CertificateRotationStatus } from '../api/certificaterotation.js';
import { isConflict } from '../kube/client.js';
import { CreatePipeline } from './create-pipeline.js';
import type { ControllerDeps } from './deps.js';
import { FakeCluster } from './fake-cluster.js';
import { DECISIONS_PER_STATUS, startNamedNext } from './handoff.js';
import { reconcileRotation } from './reconcile-rotation.js';
import { RunIndex } from './run-index.js';
import { checkInFlightObjects, checkStatus, rke2Node, runPhases } from './testing.js';

const SERVERS = ['s1', 's2', 's3'];
const WORKERS = ['w1', 'w2', 'w3', 'w4', 'w5'];
const flush = () => new Promise<void>((r) => setImmediate(r));

function cluster(): FakeCluster {
  return new FakeCluster([...SERVERS.map((n) => rke2Node(n, { etcd: true, cp: true })), ...WORKERS.map((n) => rke2Node(n))]);
}

function depsOf(fake: FakeCluster): ControllerDeps {
  const creates = new CreatePipeline({ create: (nr) => fake.createNodeRotation(nr), exists: (n) => fake.nodeRotationsByName.has(n), onError: () => {} });
  return { ...fake.deps(), creates };
}

const names = (...nodes: string[]) => nodes.map((n) => nodeRotationName('all', 1, n));

describe('startNamedNext', () => {
  it('a server reports: the next server, named next, is created before any pass; the pass then counts it in flight', async () => {
    const fake = cluster();
    fake.apply('all', { strategy: { maxUnavailable: 2 } });
    const deps = depsOf(fake);
    await reconcileRotation(deps, 'all');
    await flush();
    expect(fake.created).toEqual(names('s1'));
    expect(startNamedNext(deps, 'all')).toBe(0); // no report: no slot
    fake.report(names('s1')[0]!, { phase: 'Rotated' });
    const writes = fake.writes.length;
    expect(startNamedNext(deps, 'all')).toBe(1);
    await flush();
    expect(fake.created).toEqual(names('s1', 's2'));
    expect(fake.writes.length).toBe(writes + 1); // the create, and no status write
    expect(startNamedNext(deps, 'all')).toBe(0); // s2 exists: it holds the slot
    await reconcileRotation(deps, 'all');
    await flush();
    expect(runPhases(fake, 'all', [...SERVERS, ...WORKERS])).toMatchObject({ s1: 'Rotated', s2: 'Updating', s3: 'Pending' });
    expect(fake.created).toEqual(names('s1', 's2'));
  });

  it('does nothing without the run the last written pass kept (a new leader, or a status someone else wrote)', async () => {
    const fake = cluster();
    fake.apply('all');
    const deps = depsOf(fake);
    await reconcileRotation(deps, 'all');
    fake.report(names('s1')[0]!, { phase: 'Rotated' });
    expect(startNamedNext({ ...deps, runs: new RunIndex() }, 'all')).toBe(0);
    fake.updateSpec('all', (spec) => (spec.strategy.nodeTimeout = '20m')); // a new resourceVersion
    expect(startNamedNext(deps, 'all')).toBe(0);
    await flush();
    expect(fake.created).toEqual(names('s1'));
  });

  it(`decides at most ${DECISIONS_PER_STATUS} times per written status; the pass that follows takes in the rest`, async () => {
    const workers = Array.from({ length: 10 }, (_, i) => `w${i}`);
    const fake = new FakeCluster([...SERVERS.map((n) => rke2Node(n, { etcd: true, cp: true })), ...workers.map((n) => rke2Node(n))]);
    fake.apply('all', { strategy: { maxUnavailable: 4 } });
    const deps = depsOf(fake);
    for (let i = 0; i < SERVERS.length; i++) {
      await reconcileRotation(deps, 'all');
      await flush();
      reportOne(fake);
    }
    await reconcileRotation(deps, 'all'); // the servers are done: four workers in flight
    await flush();
    expect(fake.created).toHaveLength(SERVERS.length + 4);
    const decided = new Map<string, { at: string; n: number }>();
    const started: number[] = [];
    for (const w of workers.slice(0, 4)) {
      fake.report(nodeRotationName('all', 1, w), { phase: 'Rotated' });
      started.push(startNamedNext(deps, 'all', decided));
      await flush();
    }
    // One report each: three decisions start a node each, the fourth report waits for the pass.
    expect(started).toEqual([...Array<number>(DECISIONS_PER_STATUS).fill(1), 0]);
    await reconcileRotation(deps, 'all'); // a new status: it starts the fourth report's node
    await flush();
    expect(fake.created).toHaveLength(SERVERS.length + 8);
    fake.report(nodeRotationName('all', 1, 'w4'), { phase: 'Rotated' });
    expect(startNamedNext(deps, 'all', decided)).toBe(1); // and the path decides again
  });

  it('paused: nothing starts', async () => {
    const fake = cluster();
    fake.apply('all');
    const deps = depsOf(fake);
    await reconcileRotation(deps, 'all');
    fake.report(names('s1')[0]!, { phase: 'Rotated' });
    await reconcileRotation(deps, 'all'); // s2 in flight
    await flush();
    fake.updateSpec('all', (spec) => (spec.paused = true));
    await reconcileRotation(deps, 'all'); // paused, kept at the new resourceVersion
    fake.report(names('s2')[0]!, { phase: 'Rotated' });
    expect(startNamedNext(deps, 'all')).toBe(0);
  });

  it.each([1, 2, 3])('run after every report and during every status write (maxUnavailable %i): each node once, never two servers, never more than maxUnavailable', async (maxUnavailable) => {
    const fake = cluster();
    fake.apply('all', { strategy: { maxUnavailable } });
    const base = depsOf(fake);
    let handedOff = 0;
    const handOff = async () => {
      handedOff += startNamedNext(deps, 'all');
      await flush();
      checkInFlightObjects(fake);
      checkWorkers(fake, maxUnavailable);
    };
    // Every status write first lets the hand-off path run, and one agent report in, while it is in flight.
    const replaceStatus = async (r: CertificateRotation, st: CertificateRotationStatus) => {
      reportOne(fake);
      await handOff();
      return fake.replaceStatus(r, st);
    };
    const write = new Proxy(fake, {
      get: (target, key) => (key === 'replaceStatus' ? replaceStatus : (Reflect.get(target, key) as unknown)),
    });
    const deps: ControllerDeps = { ...base, write };
    for (let pass = 0; pass < 300 && fake.rotation('all')!.status?.phase !== 'Succeeded'; pass++) {
      try {
        await reconcileRotation(deps, 'all');
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      await flush();
      checkInFlightObjects(fake);
      reportOne(fake);
      await handOff();
    }
    expect(fake.rotation('all')!.status!.phase).toBe('Succeeded');
    expect(handedOff).toBeGreaterThan(0);
    expect(new Set(fake.created).size).toBe(fake.created.length);
    expect(fake.created).toHaveLength(SERVERS.length + WORKERS.length);
    for (const s of fake.statusHistory) checkStatus(s, maxUnavailable);
  });
});

/** The first NodeRotation without a report gets one: agents finish one at a time. */
function reportOne(fake: FakeCluster): void {
  const open = [...fake.nodeRotationsByName.values()].find((nr) => nr.status?.phase === undefined || nr.status.phase === 'Pending');
  if (open) fake.report(open.metadata.name!, { phase: 'Rotated', step: 'Done', finishedAt: '2026-09-01T10:00:00Z' });
}

/** Never more workers unfinished than maxUnavailable, over the objects agents act on. */
function checkWorkers(fake: FakeCluster, maxUnavailable: number): void {
  const open = [...fake.nodeRotationsByName.values()].filter((nr) => !['Rotated', 'Failed', 'RolledBack'].includes(nr.status?.phase ?? 'Pending'));
  expect(open.length).toBeLessThanOrEqual(maxUnavailable);
}
