// The controller's production read and write path — KubeReader and KubeWriter,
// with their read-your-writes overlay (RecentWrites) — over informer caches
// that lag the API server, as real informers do: each pass, each cache has
// caught up or not (seeded), independently. The fake API server behind them is
// the truth the invariants are checked on: never two servers in flight, never a
// server next to a worker, never more workers than maxUnavailable, every node
// instructed exactly once, the run ends Succeeded — with and without a crash
// before any single write.
import { ApiException, type V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import type { CertificateRotation, CertificateRotationStatus } from '../api/certificaterotation.js';
import type { NodeRotation, SealedBundle } from '../api/noderotation.js';
import { isConflict } from '../kube/client.js';
import type { ControllerDeps } from './deps.js';
import { CrashError, FakeCluster } from './fake-cluster.js';
import { KubeReader, KubeWriter, type KubeReaderSources } from './kube-adapter.js';
import { reconcileRotation } from './reconcile-rotation.js';
import { checkInFlightObjects, checkStatus, rke2Node } from './testing.js';

const SERVERS = ['s1', 's2', 's3'];
const WORKERS = ['w1', 'w2', 'w3', 'w4'];

/** An informer's cache: what the API server held when it last caught up. */
class LaggingCache<T extends { metadata?: { name?: string } }> {
  private held = new Map<string, T>();
  constructor(private readonly source: () => Iterable<T>) {}
  catchUp(): void {
    this.held = new Map([...this.source()].map((o) => [o.metadata!.name!, structuredClone(o)]));
  }
  get(name: string): T | undefined {
    const o = this.held.get(name);
    return o && structuredClone(o);
  }
  list(): T[] {
    return [...this.held.values()].map((o) => structuredClone(o));
  }
}

/** The API client calls KubeWriter makes, answered by the fake API server. */
function apiOf(fake: FakeCluster) {
  const rotations = {
    replaceStatus: (r: CertificateRotation, status: CertificateRotationStatus) => fake.replaceStatus(r, status),
    mergePatch: (name: string, patch: { metadata: { finalizers: string[]; resourceVersion?: string } }) => {
      const stored = fake.rotation(name)!;
      return fake.setFinalizers({ ...stored, metadata: { ...stored.metadata, resourceVersion: patch.metadata.resourceVersion } }, patch.metadata.finalizers);
    },
    tryGet: async (name: string) => fake.rotation(name),
  };
  const nodeRotations = {
    create: async (nr: NodeRotation) => {
      if ((await fake.createNodeRotation(nr)) === 'exists') throw new ApiException(409, 'AlreadyExists', JSON.stringify({ reason: 'AlreadyExists' }), {});
      return structuredClone(fake.nodeRotationsByName.get(nr.metadata.name!)!);
    },
    delete: (name: string) => fake.deleteNodeRotation(name),
    mergePatch: (name: string, patch: { sealedBundle: SealedBundle | null }) => fake.setSealedBundle(name, patch.sealedBundle),
  };
  return { rotations, nodeRotations };
}

/** `holdMs`: passes may hold their status writes, as in the controller process (status-hold.ts). */
function laggingRun(seed: number, maxUnavailable: number, crashAtWrite?: number, names = ['all'], holdMs = 0) {
  const fake = new FakeCluster([...SERVERS.map((n) => rke2Node(n, { etcd: true, cp: true })), ...WORKERS.map((n) => rke2Node(n))], { statusHoldMs: holdMs });
  for (const name of names) fake.apply(name, { strategy: { maxUnavailable } });
  fake.crashAtWrite = crashAtWrite;
  const caches = {
    rotations: new LaggingCache<CertificateRotation>(() => fake.rotationsByName.values()),
    nodeRotations: new LaggingCache<NodeRotation>(() => fake.nodeRotationsByName.values()),
    nodes: new LaggingCache<V1Node>(() => fake.nodeList),
  };
  const reader = new KubeReader(caches as unknown as KubeReaderSources);
  const api = apiOf(fake);
  const writer = new KubeWriter(api.rotations as never, api.nodeRotations as never, reader);
  const deps: ControllerDeps = { ...fake.deps(), read: reader, write: writer };
  let rnd = seed;
  const coin = (): boolean => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 < 0.5;
  for (const c of Object.values(caches)) c.catchUp();
  return { fake, caches, deps, coin, names };
}

async function drive(run: ReturnType<typeof laggingRun>): Promise<void> {
  const { fake, caches, deps, coin, names } = run;
  for (let pass = 0; pass < 2000; pass++) {
    // Each cache catches up, or not, on its own; a pass when all of them are
    // current stands for the event that a cache catching up always brings.
    const lagging = Object.values(caches).map((c) => (coin() ? (c.catchUp(), false) : true)).some(Boolean);
    const writesBefore = fake.writes.length;
    let moved = false;
    let heldFor = Infinity;
    // Time passes between passes (a quarter of the hold), so some held writes come due on their own.
    if (fake.runs.statusHoldMs > 0) fake.advance(fake.runs.statusHoldMs / 4);
    for (const name of names) {
      try {
        const r = await reconcileRotation(deps, name);
        if (r?.requeueAfterMs !== undefined) heldFor = Math.min(heldFor, r.requeueAfterMs);
      } catch (err) {
        if (!(err instanceof CrashError) && !isConflict(err)) throw err;
        moved = true;
      }
      checkInFlightObjects(fake);
    }
    for (const nr of fake.nodeRotationsByName.values()) {
      if (nr.status?.phase !== 'Pending' || !coin()) continue;
      fake.report(nr.metadata.name!, { phase: 'Rotated', step: 'Done', finishedAt: '2026-09-01T10:00:00Z' });
      moved = true;
    }
    const pending = [...fake.nodeRotationsByName.values()].some((nr) => nr.status?.phase === 'Pending');
    // A held write is due within the hold: the work queue would come back then.
    if (!lagging && !moved && !pending && fake.writes.length === writesBefore && !(heldFor <= fake.runs.statusHoldMs)) return;
  }
  throw new Error('did not settle');
}

describe.each([0, 1_000])('a run over informer caches that lag the API server, status writes held up to %i ms', (holdMs) => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i: servers one at a time, then workers within maxUnavailable, each node once, Succeeded', async (seed) => {
    const maxUnavailable = (seed % 3) + 1;
    const run = laggingRun(seed, maxUnavailable, undefined, ['all'], holdMs);
    await drive(run);
    const { fake } = run;
    expect(fake.rotation('all')!.status).toMatchObject({ phase: 'Succeeded', progress: '7/7' });
    expect(fake.created).toHaveLength(7);
    expect(new Set(fake.created).size).toBe(7);
    for (const s of fake.statusHistory) checkStatus(s, maxUnavailable);
  });

  // The one-rotation gate: a second rotation waits for the first, which it sees
  // through the same lagging caches (the first's NodeRotations and status may
  // not be there yet).
  it.each([1, 2, 3, 4, 5, 6])('seed %i, two rotations at once: never two servers in flight across them, one after the other', async (seed) => {
    const run = laggingRun(seed, 2, undefined, ['a', 'b'], holdMs);
    await drive(run);
    const { fake } = run;
    for (const name of ['a', 'b']) expect(fake.rotation(name)!.status).toMatchObject({ phase: 'Succeeded', progress: '7/7' });
    expect(fake.created).toHaveLength(14);
    for (const s of fake.statusHistory) checkStatus(s, 2);
  });

  it('and a crash before any single write: the same end, each node once', async () => {
    const reference = laggingRun(11, 2, undefined, ['all'], holdMs);
    await drive(reference);
    const total = reference.fake.writes.length;
    for (let k = 1; k <= total; k++) {
      const run = laggingRun(11 + k, 2, k, ['all'], holdMs);
      await drive(run);
      expect({ k, phase: run.fake.rotation('all')!.status!.phase }).toEqual({ k, phase: 'Succeeded' });
      expect({ k, created: new Set(run.fake.created).size, total: run.fake.created.length }).toEqual({ k, created: 7, total: 7 });
      for (const s of run.fake.statusHistory) checkStatus(s, 2);
    }
  });
});
