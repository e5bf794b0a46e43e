// The run kept between passes: when it may stand in for a rebuild, and how a
// pass's changes reach it. (Every controller test also checks it: the fake's
// index rebuilds and compares on every pass, see fake-cluster.ts.)
import { describe, expect, it } from '@jest/globals';
import type { V1Node } from '@kubernetes/client-node';
import type { NodeStatus } from '../api/certificaterotation.js';
import { FakeCluster } from './fake-cluster.js';
import { reconcileRotation } from './reconcile-rotation.js';
import { advanceBasis, basisOf, ProgressOverlay, RunIndex, sameRun, samePlannerNodes } from './run-index.js';
import { progressOf } from './run-state.js';
import { rke2Node } from './testing.js';
import { nodeRotationName } from '../api/names.js';

const SPEC = { scope: 'All', mode: 'Apply', paused: false, strategy: { maxUnavailable: 2, nodeTimeout: '10m', onFailure: 'Rollback' } } as never;
const entries = (...phases: [string, string, NodeStatus['phase']][]): NodeStatus[] => phases.map(([name, role, phase]) => ({ name, role, phase }));
const RUN = entries(['s1', 'etcd,controlplane', 'Rotated'], ['w1', 'worker', 'Updating'], ['w2', 'worker', 'Pending']);

describe('samePlannerNodes', () => {
  const a = rke2Node('a', { etcd: true, cp: true });
  const b = rke2Node('b');
  const heartbeat = { ...b, status: { ...b.status, conditions: [{ type: 'Ready', status: 'True' }] } } as V1Node;
  const relabelled = { ...b, metadata: { ...b.metadata, labels: { ...b.metadata!.labels, 'node-role.kubernetes.io/etcd': 'true' } } };
  const annotated = { ...b, metadata: { ...b.metadata, annotations: { ...b.metadata!.annotations, 'rke2.io/node-args': '["agent"]' } } };
  const recreated = { ...b, metadata: { ...b.metadata, creationTimestamp: new Date('2026-12-01T00:00:00Z') } };
  it.each<[string, V1Node[], boolean]>([
    ['the same objects', [a, b], true],
    ['a new object for a heartbeat (status only)', [a, heartbeat], true],
    ['a label changed', [a, relabelled], false],
    ['an annotation changed', [a, annotated], false],
    ['the Node recreated', [a, recreated], false],
    ['one Node gone', [a], false],
    ['one Node more', [a, b, rke2Node('c')], false],
    ['another Node in its place', [a, rke2Node('c')], false],
  ])('%s: %s', (_, now, same) => {
    expect(samePlannerNodes([a, b], now)).toBe(same);
  });
});

describe('sameRun', () => {
  const base = basisOf('rke2', SPEC, RUN);
  it.each<[string, NodeStatus[], string | undefined]>([
    ['the same', RUN, undefined],
    ['a Rotated node with other times', RUN.map((e) => (e.phase === 'Rotated' ? { ...e, finishedAt: '2026-12-01T00:00:00Z' } : e)), undefined],
    ['a phase differs', RUN.map((e) => (e.name === 'w2' ? { ...e, phase: 'Updating' as const } : e)), 'node 2: w2 (worker) Pending, rebuilt w2 (worker) Updating'],
    ['an in-flight node started at another time', RUN.map((e) => (e.name === 'w1' ? { ...e, startedAt: '2026-12-01T00:00:00Z' } : e)), 'node w1:'],
    ['a node fewer', RUN.slice(0, 2), '3 nodes, rebuilt 2'],
    ['another order', [RUN[0]!, RUN[2]!, RUN[1]!], 'node 1: w1 (worker) Updating, rebuilt w2 (worker) Pending'],
  ])('%s', (_, rebuilt, drift) => {
    const got = sameRun(base, basisOf('rke2', SPEC, rebuilt));
    if (drift === undefined) expect(got).toBeUndefined();
    else expect(got).toContain(drift);
  });
});

describe('ProgressOverlay and advanceBasis', () => {
  it('a pass reads its own changes over the kept progress; the kept one changes only when advanced', () => {
    const kept = basisOf('rke2', SPEC, RUN);
    const overlay = new ProgressOverlay(kept.progress);
    const w1: NodeStatus = { name: 'w1', role: 'worker', phase: 'Rotated' };
    overlay.set('w1', progressOf(w1));
    expect(overlay.get('w1')?.phase).toBe('Rotated');
    expect(kept.progress.get('w1')?.phase).toBe('Updating');
    expect([...overlay.entries()].map(([k, v]) => `${k}=${v.phase}`)).toEqual(['s1=Rotated', 'w1=Rotated', 'w2=Pending']);
    expect(overlay.size).toBe(3);
    const next = advanceBasis(kept, [RUN[0]!, w1, RUN[2]!], overlay, kept.tally);
    expect(next.progress.get('w1')?.phase).toBe('Rotated');
    expect(next.entries[1]).toBe(w1);
    expect(next.plan).toBe(kept.plan);
  });
});

describe('RunIndex.lookup', () => {
  const nodes = [rke2Node('a', { etcd: true, cp: true }), rke2Node('b')];
  const basis = basisOf('rke2', SPEC, RUN);
  const index = (): RunIndex => {
    const i = new RunIndex({ fullEveryMs: 10_000 });
    i.keep('r', '1/2026-12-01T00:00:00Z', '7', nodes, basis, 1_000, 1_000);
    return i;
  };
  it.each<[string, Parameters<RunIndex['lookup']>, 'kept' | 'due' | 'rebuild']>([
    ['nothing changed', ['r', '1/2026-12-01T00:00:00Z', '7', nodes, 2_000], 'kept'],
    ['the last rebuild is older than fullEveryMs', ['r', '1/2026-12-01T00:00:00Z', '7', nodes, 11_000], 'due'],
    ['someone else wrote the rotation', ['r', '1/2026-12-01T00:00:00Z', '8', nodes, 2_000], 'rebuild'],
    ['another run', ['r', '2/2026-12-01T00:00:00Z', '7', nodes, 2_000], 'rebuild'],
    ['another rotation', ['s', '1/2026-12-01T00:00:00Z', '7', nodes, 2_000], 'rebuild'],
    ['a Node gone', ['r', '1/2026-12-01T00:00:00Z', '7', nodes.slice(1), 2_000], 'rebuild'],
  ])('%s: %s', (_, args, want) => {
    const found = index().lookup(...args);
    expect(found === undefined ? 'rebuild' : found.due ? 'due' : 'kept').toBe(want);
  });

  it('a rebuild that agreed owes the next comparison fullEveryMs later; one of another version of the rotation changes nothing', () => {
    const i = index();
    const at = (ms: number) => i.lookup('r', '1/2026-12-01T00:00:00Z', '7', nodes, ms)?.due;
    i.rebuilt('r', '8', 11_000);
    expect(at(12_000)).toBe(true);
    i.rebuilt('r', '7', 11_000);
    expect([at(12_000), at(20_999), at(21_000)]).toEqual([false, false, true]);
  });
});

describe('a run through the controller with the index', () => {
  it('a NodeRotation of a rotated node deleted by hand: the next due rebuild sees it, the kept run gives way and the node is rotated again', async () => {
    const fake = new FakeCluster([rke2Node('s1', { etcd: true, cp: true }), rke2Node('w1'), rke2Node('w2')]);
    fake.apply('r', { strategy: { maxUnavailable: 1 } });
    const warnings: object[] = [];
    const runs = new RunIndex({ fullEveryMs: 60_000 });
    const deps = { ...fake.deps(), runs, log: { ...fake.deps().log, warn: (o: object) => warnings.push(o) } };
    await reconcileRotation(deps, 'r'); // s1 in flight
    fake.report(nodeRotationName('r', 1, 's1'), { phase: 'Rotated', finishedAt: '2026-09-01T10:00:00Z' });
    await reconcileRotation(deps, 'r'); // s1 rotated, w1 in flight
    await fake.deleteNodeRotation(nodeRotationName('r', 1, 's1'));
    await reconcileRotation(deps, 'r'); // kept: s1 still Rotated, nothing to do
    expect(fake.rotation('r')!.status!.progress).toBe('1/3');
    expect(warnings).toEqual([]);
    fake.advance(60_000);
    await reconcileRotation(deps, 'r'); // due: the rebuild finds s1 Pending again and wins
    expect(warnings).toEqual([expect.objectContaining({ drift: expect.stringContaining('s1 (etcd,controlplane) Rotated, rebuilt s1 (etcd,controlplane) Pending') })]);
    expect(fake.rotation('r')!.status!.progress).toBe('0/3');
  });

  it('held passes after a due rebuild do not rebuild again: one full rebuild per fullEveryMs, whether or not the passes write', async () => {
    const workers = Array.from({ length: 24 }, (_, i) => `w${i}`);
    const fake = new FakeCluster([rke2Node('s1', { etcd: true, cp: true }), ...workers.map((n) => rke2Node(n))]);
    fake.apply('r', { strategy: { maxUnavailable: 4 } });
    const runs = new RunIndex({ fullEveryMs: 500, statusHoldMs: 1_000 });
    // A rebuild lists every NodeRotation of the rotation (as the pass that starts the run does, more than once);
    // a kept pass reads those in flight by name. The clock moves between passes: one time, one pass.
    const listedAt = new Set<number>();
    const read = Object.create(fake) as FakeCluster;
    read.nodeRotationsOf = (rotation: string) => (listedAt.add(fake.deps().now().getTime()), fake.nodeRotationsOf(rotation));
    const statusWrites = () => fake.writes.filter((w) => w.startsWith('status')).length;
    let held = 0;
    for (let pass = 0; pass < 500 && fake.rotation('r')!.status?.phase !== 'Succeeded'; pass++) {
      const before = statusWrites();
      await reconcileRotation({ ...fake.deps(), read, runs }, 'r');
      if (statusWrites() === before) held++;
      fake.advance(50);
      const nr = [...fake.nodeRotationsByName.values()].find((n) => n.status?.phase === 'Pending');
      if (nr) fake.report(nr.metadata.name!, { phase: 'Rotated', step: 'Done', finishedAt: '2026-09-01T10:00:00Z' });
    }
    expect(fake.rotation('r')!.status).toMatchObject({ phase: 'Succeeded', progress: '25/25' });
    expect(held).toBeGreaterThan(5);
    // The pass that starts the run rebuilds (nothing is kept yet); then a rebuild every 500 ms at most.
    const rebuiltAt = [...listedAt];
    expect(rebuiltAt.length).toBeGreaterThan(2);
    const gaps = rebuiltAt.slice(1).map((t, i) => t - rebuiltAt[i]!);
    expect(gaps.filter((g) => g < 500)).toEqual([]);
  });
});
