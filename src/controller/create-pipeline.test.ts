// The background NodeRotation creates (create-pipeline.ts): the pipeline
// itself, and whole runs on the fenced fake where creates land LATE (after
// the next passes started) and the process crashes before any single write,
// losing whatever creates it still held.
import { describe, expect, it } from '@jest/globals';
import { nodeRotationName } from '../api/names.js';
import type { NodeRotation } from '../api/noderotation.js';
import { isConflict } from '../kube/client.js';
import { CreatePipeline } from './create-pipeline.js';
import { CrashError, FakeCluster } from './fake-cluster.js';
import { reconcileRotation } from './reconcile-rotation.js';
import { rke2Node } from './testing.js';

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function nr(name: string): NodeRotation {
  return { metadata: { name } } as NodeRotation;
}

/** Creates that are held until the test lets them through. */
class Gate {
  readonly held: { nr: NodeRotation; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  readonly sent: string[] = [];
  create = (obj: NodeRotation): Promise<unknown> =>
    new Promise((resolve, reject) => {
      this.sent.push(obj.metadata.name!);
      this.held.push({ nr: obj, resolve, reject });
    });
}

describe('CreatePipeline', () => {
  it('returns at once, sends a name in flight only once, and settles per rotation', async () => {
    const gate = new Gate();
    const p = new CreatePipeline({ create: gate.create, onError: () => {} });
    p.start('a', [nr('a-1'), nr('a-2')]);
    p.start('a', [nr('a-1')]); // a later pass that sees a-1 Updating without its object
    p.start('b', [nr('b-1')]);
    await flush();
    expect(gate.sent).toEqual(['a-1', 'a-2', 'b-1']);
    expect(p.pending('a-1')).toBe(true);

    let aSettled = false;
    const a = p.settled('a').then(() => (aSettled = true));
    gate.held.find((h) => h.nr.metadata.name === 'b-1')!.resolve('created');
    await flush();
    expect(aSettled).toBe(false);
    for (const h of gate.held.filter((x) => x.nr.metadata.name!.startsWith('a-'))) h.resolve('created');
    await a;
    expect(p.size).toBe(0);
    expect(p.pending('a-1')).toBe(false);

    p.start('a', [nr('a-1')]); // after it finished, a create is sent again (AlreadyExists is the writer's business)
    await flush();
    expect(gate.sent).toEqual(['a-1', 'a-2', 'b-1', 'a-1']);
  });

  it('skips an object that exists by the time its turn comes (an earlier pass created it meanwhile)', async () => {
    const gate = new Gate();
    const existing = new Set<string>();
    const p = new CreatePipeline({ create: gate.create, onError: () => {}, concurrency: 1, exists: (name) => existing.has(name) });
    p.start('a', [nr('a-1'), nr('a-2'), nr('a-3')]);
    await flush();
    expect(gate.sent).toEqual(['a-1']);
    existing.add('a-2'); // seen in the cache while a-2 waited for a slot
    gate.held[0]!.resolve('created');
    await flush();
    await flush();
    expect(gate.sent).toEqual(['a-1', 'a-3']);
    gate.held[1]!.resolve('created');
    await p.settled('a');
    expect(p.size).toBe(0);
  });

  it('keeps at most `concurrency` creates in flight', async () => {
    const gate = new Gate();
    const p = new CreatePipeline({ create: gate.create, onError: () => {}, concurrency: 2 });
    p.start('a', [nr('1'), nr('2'), nr('3'), nr('4'), nr('5')]);
    await flush();
    expect(gate.sent).toEqual(['1', '2']);
    gate.held.shift()!.resolve('created');
    await flush();
    expect(gate.sent).toEqual(['1', '2', '3']);
    p.start('a', [nr('6')]);
    await flush();
    expect(gate.held).toHaveLength(2);
    while (gate.held.length > 0) {
      gate.held.shift()!.resolve('created');
      await flush();
      expect(gate.held.length).toBeLessThanOrEqual(2);
    }
    await p.settled();
    expect(gate.sent).toEqual(['1', '2', '3', '4', '5', '6']);
  });

  it('reports a failed create and forgets it, so the next pass creates it again', async () => {
    const gate = new Gate();
    const errors: string[] = [];
    const p = new CreatePipeline({ create: gate.create, onError: (rot, name, err) => errors.push(`${rot}/${name}: ${String(err)}`) });
    p.start('a', [nr('a-1')]);
    await flush();
    gate.held.shift()!.reject(new Error('connection reset'));
    await p.settled('a');
    expect(errors).toEqual(['a/a-1: Error: connection reset']);
    expect(p.pending('a-1')).toBe(false);
  });
});

// ---------------------------------------------------------------------------
// Whole runs with late creates.

const SERVERS = ['s1', 's2', 's3'];
const WORKERS = ['w1', 'w2', 'w3', 'w4', 'w5'];
const isServerRole = (role: string): boolean => role.includes('etcd') || role.includes('controlplane');

function cluster(): FakeCluster {
  return new FakeCluster([...SERVERS.map((n) => rke2Node(n, { etcd: true, cp: true })), ...WORKERS.map((n) => rke2Node(n))]);
}

/**
 * A controller process whose creates land `lag` passes late. Creates go
 * through the fake only when released; a crash (CrashError at any write, in
 * a pass or in a create) kills the process: creates it still held never reach
 * the API server, and a fresh process (new pipeline) carries on.
 */
async function driveLate(fake: FakeCluster, name: string, opts: { lag: number; maxUnavailable: number }): Promise<{ restarts: number }> {
  let restarts = 0;
  let crashed = false;
  let gate = new Gate();
  const newPipeline = (): CreatePipeline =>
    new CreatePipeline({
      create: gate.create,
      onError: (_r, _n, err) => {
        if (!(err instanceof CrashError)) throw err;
        crashed = true;
      },
    });
  let pipeline = newPipeline();
  const restart = (): void => {
    restarts++;
    crashed = false;
    gate = new Gate(); // the dead process's held creates are gone with it
    pipeline = newPipeline();
  };
  /** Lets creates through, oldest first, checking intent-before-create on each. */
  const release = async (all: boolean): Promise<void> => {
    const g = gate;
    const n = all ? g.held.length : Math.max(0, g.held.length - opts.lag * opts.maxUnavailable);
    for (const h of g.held.splice(0, n)) {
      const node = h.nr.spec.nodeName;
      // The status the API server holds records this node's intent before its object exists: in flight, or named next.
      const st = fake.rotation(name)!.status!;
      expect(st.nodes?.some((e) => e.name === node && e.phase === 'Updating') || st.nextNodes?.includes(node)).toBe(true);
      try {
        h.resolve(await fake.createNodeRotation(h.nr));
      } catch (err) {
        h.reject(err);
      }
      await flush();
      if (crashed) return restart();
    }
  };

  for (let pass = 0; pass < 500; pass++) {
    const writesBefore = fake.writes.length;
    let retry = false;
    try {
      await reconcileRotation({ ...fake.deps(), creates: pipeline }, name);
    } catch (err) {
      if (!(err instanceof CrashError) && !isConflict(err)) throw err;
      if (err instanceof CrashError) restart();
      retry = true;
    }
    checkObjects(fake);
    await release(false);
    checkObjects(fake);
    let agentActed = false;
    for (const obj of fake.nodeRotationsByName.values()) {
      if (obj.status?.phase !== 'Pending') continue;
      fake.report(obj.metadata.name!, { phase: 'Rotated', step: 'Done', finishedAt: '2026-09-01T10:00:00Z' });
      agentActed = true;
    }
    if (!agentActed && !retry && fake.writes.length === writesBefore) {
      if (gate.held.length === 0) return { restarts };
      await release(true);
    }
  }
  throw new Error('did not settle');
}

/** Never two servers in flight, never a server next to anything else, over the objects agents act on. */
function checkObjects(fake: FakeCluster): void {
  const open = [...fake.nodeRotationsByName.values()].filter((o) => !['Rotated', 'Failed', 'RolledBack'].includes(o.status?.phase ?? 'Pending'));
  const servers = open.filter((o) => isServerRole(o.spec.role));
  expect(servers.length).toBeLessThanOrEqual(1);
  if (servers.length === 1) expect(open).toHaveLength(1);
}

function checkHistory(fake: FakeCluster, maxUnavailable: number): void {
  for (const status of fake.statusHistory) {
    const flying = (status.nodes ?? []).filter((n) => n.phase === 'Updating');
    const servers = flying.filter((n) => isServerRole(n.role));
    expect(servers.length).toBeLessThanOrEqual(1);
    if (servers.length === 1) expect(flying).toHaveLength(1);
    expect(flying.length).toBeLessThanOrEqual(maxUnavailable);
  }
}

describe('reconcile with creates in the background', () => {
  it('finishes with one create request per node although passes run ahead of their creates', async () => {
    for (const lag of [0, 1, 2]) {
      const fake = cluster();
      fake.apply('all', { strategy: { maxUnavailable: 2 } });
      await driveLate(fake, 'all', { lag, maxUnavailable: 2 });
      expect(fake.rotation('all')!.status!.phase).toBe('Succeeded');
      expect(fake.created).toHaveLength(8);
      expect(fake.writes.filter((w) => w.startsWith('create'))).toHaveLength(8);
      checkHistory(fake, 2);
    }
  });

  it('a crash before ANY single write (creates in flight lost with the process) resumes to the same end', async () => {
    const reference = cluster();
    reference.apply('all', { strategy: { maxUnavailable: 2 } });
    await driveLate(reference, 'all', { lag: 1, maxUnavailable: 2 });
    const total = reference.writes.length;
    let restarts = 0;
    for (let k = 1; k <= total; k++) {
      const fake = cluster();
      fake.apply('all', { strategy: { maxUnavailable: 2 } });
      fake.crashAtWrite = k;
      restarts += (await driveLate(fake, 'all', { lag: 1, maxUnavailable: 2 })).restarts;
      expect(fake.rotation('all')!.status!.phase).toBe('Succeeded');
      expect(new Set(fake.created).size).toBe(fake.created.length);
      expect(fake.created).toHaveLength(8);
      checkHistory(fake, 2);
    }
    expect(restarts).toBe(total);
  });

  it('deleting a rotation waits for its creates in flight: no NodeRotation appears after the cleanup', async () => {
    const fake = cluster();
    fake.apply('del');
    const gate = new Gate();
    const pipeline = new CreatePipeline({ create: gate.create, onError: () => {} });
    const deps = { ...fake.deps(), creates: pipeline };
    await reconcileRotation(deps, 'del'); // s1's intent written, its create held
    expect(fake.nodeRotationsByName.size).toBe(0);
    fake.deleteRotation('del');
    let finished = false;
    const finalizing = reconcileRotation(deps, 'del').then(() => (finished = true));
    await flush();
    expect(finished).toBe(false); // waiting for the create, not deleting around it
    const h = gate.held.shift()!;
    h.resolve(await fake.createNodeRotation(h.nr));
    await finalizing;
    expect(fake.rotation('del')).toBeDefined(); // s1 is now in flight: wait for it
    fake.report(nodeRotationName('del', 1, 's1'), { phase: 'Rotated' });
    await reconcileRotation(deps, 'del');
    expect(fake.rotation('del')).toBeUndefined();
    expect(fake.nodeRotationsByName.size).toBe(0);
    expect(gate.held).toHaveLength(0);
  });
});
