// Issue 14 §1: the CertificateRotation's status does not grow with the fleet.
// A whole run of 3 servers + 5,000 workers (the largest cluster Kubernetes
// supports, plus its control plane) through the in-memory API server; every
// status the controller wrote is measured as the API server would store it.
import { describe, expect, it } from '@jest/globals';
import type { CertificateRotationStatus } from '../api/certificaterotation.js';
import { NEXT_NODES } from '../api/constants.js';
import type { NodeRotation, NodeRotationStatus } from '../api/noderotation.js';
import { isConflict } from '../kube/client.js';
import { CrashError, FakeCluster } from './fake-cluster.js';
import { reconcileRotation } from './reconcile-rotation.js';
import { checkStatus, plannedCount, rke2Node } from './testing.js';

const KIB = 1024;
const bytes = (s: CertificateRotationStatus): number => Buffer.byteLength(JSON.stringify(s));

function fleet(workers: number, name: (kind: string, i: number) => string = (k, i) => `rke2-${k}-${i}`): FakeCluster {
  return new FakeCluster([
    ...[0, 1, 2].map((i) => rke2Node(name('server', i), { etcd: true, cp: true })),
    ...Array.from({ length: workers }, (_, i) => rke2Node(name('worker', i))),
  ]);
}

type Agent = (nr: NodeRotation) => Partial<NodeRotationStatus>;
const rotated: Agent = () => ({ phase: 'Rotated', step: 'Done', finishedAt: '2026-09-01T10:00:00Z' });

/** Passes until nothing moves; the agents answer every open NodeRotation between passes. */
async function run(fake: FakeCluster, agent: Agent): Promise<void> {
  for (let pass = 0; pass < 1000; pass++) {
    const before = fake.writes.length;
    try {
      await reconcileRotation(fake.deps(), 'big');
    } catch (err) {
      if (!(err instanceof CrashError) && !isConflict(err)) throw err;
    }
    let answered = false;
    for (const nr of fake.nodeRotationsByName.values()) {
      if (nr.status?.phase !== 'Pending') continue;
      fake.report(nr.metadata.name!, agent(nr));
      answered = true;
    }
    if (!answered && fake.writes.length === before) return;
  }
  throw new Error('did not settle');
}

describe('status size at 3 + 5,000 nodes', () => {
  it('a whole run, maxUnavailable 50: every status written is under 32 KiB, and as large as at 3 + 500 nodes', async () => {
    const sizes: Record<number, number> = {};
    for (const workers of [500, 5000]) {
      const fake = fleet(workers);
      fake.apply('big', { strategy: { maxUnavailable: 50 } });
      await run(fake, rotated);
      const status = fake.rotation('big')!.status!;
      expect(status).toMatchObject({ phase: 'Succeeded', progress: `${workers + 3}/${workers + 3}` });
      expect(plannedCount(status)).toBe(workers + 3);
      expect(status.counts).toEqual([
        { role: 'etcd,controlplane', planned: 3, pending: 0, updating: 0, rotated: 3, failed: 0, skipped: 0 },
        { role: 'worker', planned: workers, pending: 0, updating: 0, rotated: workers, failed: 0, skipped: 0 },
      ]);
      expect(fake.created).toHaveLength(workers + 3);
      for (const s of fake.statusHistory) checkStatus(s, 50);
      sizes[workers] = Math.max(...fake.statusHistory.map(bytes));
      // The nodes named next are the next few, not the rest of the fleet.
      expect(Math.max(...fake.statusHistory.map((s) => s.nextNodes?.length ?? 0))).toBe(NEXT_NODES);
    }
    expect(sizes[5000]).toBeLessThan(32 * KIB);
    // Flat: 10 times the nodes, the same size give or take the digits of the counts and names.
    expect(sizes[5000]! - sizes[500]!).toBeLessThan(200);
  }, 120_000);

  it('names of 253 characters (the longest a Node may have) and a whole batch failing: still under 32 KiB', async () => {
    const long = (kind: string, i: number) => `${kind}-${i}-`.padEnd(253, 'x');
    const fake = fleet(5000, long);
    fake.apply('big', { strategy: { maxUnavailable: 50, onFailure: 'Halt' } });
    // The first batch of workers fails with the longest message an agent may write.
    const agent: Agent = (nr) =>
      nr.spec.role === 'worker' ? { phase: 'Failed', step: 'Verifying', message: 'm'.repeat(1024), finishedAt: '2026-09-01T10:00:00Z' } : rotated(nr);
    await run(fake, agent);
    const status = fake.rotation('big')!.status!;
    expect(status.phase).toBe('Failed');
    expect(status.nodes).toHaveLength(50);
    expect(status.nodes!.filter((n) => n.message !== undefined)).toHaveLength(5);
    expect(status.conditions!.find((c) => c.type === 'Stalled')!.message).toContain('(and 49 more node(s))');
    expect(Math.max(...fake.statusHistory.map(bytes))).toBeLessThan(32 * KIB);
  }, 120_000);
});
