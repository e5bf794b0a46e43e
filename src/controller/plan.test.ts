import { describe, expect, it } from '@jest/globals';
import type { V1Node } from '@kubernetes/client-node';
import type { NodePhase } from '../api/constants.js';
import { SERVICE_ROLES, SERVICES_BY_DISTRIBUTION } from '../distributions/services.js';
import {
  isRelevant,
  matchesSelector,
  nextStep,
  planRotation,
  type CascadeInput,
  type NodeProgress,
  type Plan,
  type PlanInput,
} from './plan.js';
import { makeNode, rke2Node, rkeNode } from './testing.js';

// A deliberately shuffled RKE2 cluster: names do not sort in role order.
const rke2Cluster: V1Node[] = [
  rke2Node('w-b'),
  rke2Node('cp-b', { cp: true }),
  rke2Node('aio-2', { etcd: true, cp: true }),
  rke2Node('etcd-z', { etcd: true }),
  rke2Node('w-a'),
  rke2Node('aio-1', { etcd: true, cp: true }),
  rke2Node('etcd-w', { etcd: true, workerLabel: true }),
  rke2Node('cp-a', { cp: true }),
  rke2Node('w-c'),
];

const rkeCluster: V1Node[] = [
  rkeNode('worker-2', { worker: true }),
  rkeNode('cp-1', { cp: true }),
  rkeNode('etcd-cp-1', { etcd: true, cp: true }),
  rkeNode('etcd-1', { etcd: true }),
  rkeNode('worker-1', { worker: true }),
  rkeNode('orphan', {}),
];

function plan(input: Partial<PlanInput> & Pick<PlanInput, 'nodes' | 'distribution'>): Plan {
  const r = planRotation({ scope: 'All', maxUnavailable: 1, ...input });
  if (!r.ok) throw new Error(r.message);
  return r.plan;
}
const names = (p: Plan): string[] => p.nodes.map((n) => n.name);

describe('planRotation: order', () => {
  it('RKE2: etcd-only → etcd+controlplane → controlplane-only → workers, by name in each group', () => {
    expect(names(plan({ nodes: rke2Cluster, distribution: 'rke2' }))).toEqual([
      'etcd-w', 'etcd-z', 'aio-1', 'aio-2', 'cp-a', 'cp-b', 'w-a', 'w-b', 'w-c',
    ]);
  });

  it('RKE: etcd plane → control plane → workers; a node with no role label is skipped', () => {
    const p = plan({ nodes: rkeCluster, distribution: 'rke' });
    expect(names(p)).toEqual(['etcd-1', 'etcd-cp-1', 'cp-1', 'worker-1', 'worker-2']);
    expect(p.skipped).toEqual([{ name: 'orphan', reason: 'no rke role label' }]);
  });

  it('is the same whatever order the nodes come in', () => {
    const reversed = [...rke2Cluster].reverse();
    expect(names(plan({ nodes: reversed, distribution: 'rke2' }))).toEqual(names(plan({ nodes: rke2Cluster, distribution: 'rke2' })));
  });

  it('sorts by byte order, not locale order', () => {
    const p = plan({ nodes: [rke2Node('b'), rke2Node('B'), rke2Node('a')], distribution: 'rke2' });
    expect(names(p)).toEqual(['B', 'a', 'b']);
  });
});

describe('planRotation: batches', () => {
  it('servers one per batch, workers maxUnavailable per batch', () => {
    const p = plan({ nodes: rke2Cluster, distribution: 'rke2', maxUnavailable: 2 });
    expect(p.nodes.map((n) => [n.name, n.kind, n.batch])).toEqual([
      ['etcd-w', 'server', 0], ['etcd-z', 'server', 1], ['aio-1', 'server', 2], ['aio-2', 'server', 3],
      ['cp-a', 'server', 4], ['cp-b', 'server', 5], ['w-a', 'worker', 6], ['w-b', 'worker', 6], ['w-c', 'worker', 7],
    ]);
  });

  it('maxUnavailable larger than the workers puts all workers in one batch', () => {
    const p = plan({ nodes: rke2Cluster, distribution: 'rke2', maxUnavailable: 50 });
    expect(new Set(p.nodes.filter((n) => n.kind === 'worker').map((n) => n.batch)).size).toBe(1);
  });
});

describe('planRotation: relevance (Rancher shouldRotateEntry)', () => {
  it.each<[string, 'rke2' | 'rke', string[]]>([
    ['etcd', 'rke2', ['etcd-w', 'etcd-z', 'aio-1', 'aio-2']],
    ['api-server', 'rke2', ['etcd-w', 'aio-1', 'aio-2', 'cp-a', 'cp-b', 'w-a', 'w-b', 'w-c']],
    ['controller-manager', 'rke2', ['aio-1', 'aio-2', 'cp-a', 'cp-b']],
    ['kubelet', 'rke2', ['etcd-w', 'etcd-z', 'aio-1', 'aio-2', 'cp-a', 'cp-b', 'w-a', 'w-b', 'w-c']],
    ['supervisor', 'rke2', ['etcd-w', 'etcd-z', 'aio-1', 'aio-2', 'cp-a', 'cp-b']],
    ['etcd', 'rke', ['etcd-1', 'etcd-cp-1']],
    ['kube-apiserver', 'rke', ['etcd-cp-1', 'cp-1']],
    ['kube-proxy', 'rke', ['etcd-1', 'etcd-cp-1', 'cp-1', 'worker-1', 'worker-2']],
  ])('%s on %s touches only relevant nodes', (service, distribution, expected) => {
    const nodes = distribution === 'rke2' ? rke2Cluster : rkeCluster;
    const p = plan({ nodes, distribution, scope: 'Service', service });
    expect(names(p)).toEqual(expected);
    for (const n of p.nodes) expect(n.services).toEqual([service]);
  });

  it('etcd-w is relevant to api-server through its worker label, etcd-z (etcd only) is not', () => {
    const p = plan({ nodes: rke2Cluster, distribution: 'rke2', scope: 'Service', service: 'api-server' });
    expect(p.skipped).toEqual([{ name: 'etcd-z', reason: 'api-server is not relevant to role etcd' }]);
  });

  it('scope All gives each node the services relevant to its roles, in services.ts order', () => {
    const p = plan({ nodes: rke2Cluster, distribution: 'rke2' });
    const byName = new Map(p.nodes.map((n) => [n.name, n.services]));
    expect(byName.get('etcd-z')).toEqual(['rke2-server', 'etcd', 'kubelet', 'supervisor']);
    expect(byName.get('w-a')).toEqual(['api-server', 'rke2-server', 'auth-proxy', 'kubelet', 'kube-proxy']);
    expect(byName.get('aio-1')).toEqual([...SERVICES_BY_DISTRIBUTION.rke2]);
  });

  it('every service of every distribution is relevant to at least one role', () => {
    for (const d of ['rke2', 'rke'] as const) {
      for (const s of SERVICES_BY_DISTRIBUTION[d]) {
        expect({ d, s, roles: SERVICE_ROLES[d][s]?.length ?? 0 }).toEqual({ d, s, roles: expect.any(Number) });
        expect(isRelevant(d, s, ['etcd', 'controlplane', 'worker'])).toBe(true);
      }
    }
  });
});

describe('planRotation: refusals', () => {
  it('a service the distribution does not have', () => {
    const r = planRotation({ nodes: rke2Cluster, distribution: 'rke2', scope: 'Service', service: 'kube-apiserver', maxUnavailable: 1 });
    expect(r).toEqual({ ok: false, reason: 'ServiceNotInDistribution', message: expect.stringContaining('"kube-apiserver" is not a service of rke2') });
  });

  it('a selector that matches nothing', () => {
    const r = planRotation({ nodes: rke2Cluster, distribution: 'rke2', scope: 'All', maxUnavailable: 1, nodeSelector: { matchLabels: { pool: 'none' } } });
    expect(r).toMatchObject({ ok: false, reason: 'NoNodesSelected' });
  });
});

describe('matchesSelector', () => {
  const labels = { pool: 'a', zone: 'z1' };
  it.each<[string, Parameters<typeof matchesSelector>[1], boolean]>([
    ['absent selector', undefined, true],
    ['empty selector', {}, true],
    ['matchLabels hit', { matchLabels: { pool: 'a' } }, true],
    ['matchLabels miss', { matchLabels: { pool: 'b' } }, false],
    ['In hit', { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1', 'z2'] }] }, true],
    ['In on a missing key', { matchExpressions: [{ key: 'rack', operator: 'In', values: ['r1'] }] }, false],
    ['NotIn on a missing key matches', { matchExpressions: [{ key: 'rack', operator: 'NotIn', values: ['r1'] }] }, true],
    ['NotIn miss', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['z1'] }] }, false],
    ['Exists', { matchExpressions: [{ key: 'pool', operator: 'Exists' }] }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'pool', operator: 'DoesNotExist' }] }, false],
    ['labels AND expressions', { matchLabels: { pool: 'a' }, matchExpressions: [{ key: 'zone', operator: 'In', values: ['z9'] }] }, false],
  ])('%s', (_name, selector, expected) => {
    expect(matchesSelector(labels, selector)).toBe(expected);
  });

  it('narrows the plan', () => {
    const nodes = [makeNode('x', { kubelet: 'v1+rke2r1', labels: { pool: 'a' } }), makeNode('y', { kubelet: 'v1+rke2r1', labels: { pool: 'b' } })];
    expect(names(plan({ nodes, distribution: 'rke2', nodeSelector: { matchLabels: { pool: 'b' } } }))).toEqual(['y']);
  });
});

// ---------------------------------------------------------------------------

const NOW = new Date('2026-01-01T12:00:00Z');
function cascade(p: Plan, phases: Record<string, NodePhase | [NodePhase, string]>, extra: Partial<CascadeInput> = {}) {
  const progress = new Map<string, NodeProgress>(
    Object.entries(phases).map(([n, v]) => [n, Array.isArray(v) ? { phase: v[0], startedAt: v[1] } : { phase: v, startedAt: NOW.toISOString() }]),
  );
  return nextStep({ plan: p, progress, paused: false, onFailure: 'Rollback', nodeTimeoutMs: 600_000, now: NOW, ...extra });
}

describe('nextStep', () => {
  const p = plan({ nodes: rke2Cluster, distribution: 'rke2', maxUnavailable: 2 });
  const servers = p.nodes.filter((n) => n.kind === 'server').map((n) => n.name);
  const allServersDone = Object.fromEntries(servers.map((s) => [s, 'Rotated' as NodePhase]));

  it('starts with the first server alone', () => {
    expect(cascade(p, {})).toEqual({ kind: 'start', nodes: [expect.objectContaining({ name: 'etcd-w' })] });
  });

  it('waits while a server is in flight', () => {
    expect(cascade(p, { 'etcd-w': 'Updating' })).toEqual({ kind: 'wait', reason: 'InFlight', inFlight: ['etcd-w'] });
  });

  it('starts the next server when the previous one rotated', () => {
    expect(cascade(p, { 'etcd-w': 'Rotated' })).toMatchObject({ kind: 'start', nodes: [{ name: 'etcd-z' }] });
  });

  it('treats Skipped as finished', () => {
    expect(cascade(p, { 'etcd-w': 'Skipped' })).toMatchObject({ kind: 'start', nodes: [{ name: 'etcd-z' }] });
  });

  it('starts maxUnavailable workers once every server is done', () => {
    expect(cascade(p, allServersDone)).toMatchObject({ kind: 'start', nodes: [{ name: 'w-a' }, { name: 'w-b' }] });
  });

  it('refills a freed worker slot at once (rolling window)', () => {
    expect(cascade(p, { ...allServersDone, 'w-a': 'Rotated', 'w-b': 'Updating' })).toMatchObject({ kind: 'start', nodes: [{ name: 'w-c' }] });
  });

  it('waits when all worker slots are taken', () => {
    expect(cascade(p, { ...allServersDone, 'w-a': 'Updating', 'w-b': 'Updating' })).toEqual({ kind: 'wait', reason: 'InFlight', inFlight: ['w-a', 'w-b'] });
  });

  it('is done when every node is Rotated or Skipped', () => {
    expect(cascade(p, { ...allServersDone, 'w-a': 'Rotated', 'w-b': 'Skipped', 'w-c': 'Rotated' })).toEqual({ kind: 'done' });
  });

  it('paused: starts nothing, nodes in flight finish', () => {
    expect(cascade(p, {}, { paused: true })).toEqual({ kind: 'wait', reason: 'Paused', inFlight: [] });
    expect(cascade(p, { ...allServersDone, 'w-a': 'Updating' }, { paused: true })).toEqual({ kind: 'wait', reason: 'Paused', inFlight: ['w-a'] });
  });

  it('a failed or rolled-back node stops the run; workers in flight finish', () => {
    expect(cascade(p, { 'etcd-w': 'RolledBack' }, { onFailure: 'Rollback' })).toEqual({
      kind: 'failed', failed: [{ name: 'etcd-w', phase: 'RolledBack', message: undefined }], inFlight: [], onFailure: 'Rollback',
    });
    expect(cascade(p, { ...allServersDone, 'w-a': 'Failed', 'w-b': 'Updating' }, { onFailure: 'Halt' })).toMatchObject({
      kind: 'failed', failed: [{ name: 'w-a', phase: 'Failed' }], inFlight: ['w-b'], onFailure: 'Halt',
    });
  });

  it('a node in flight longer than nodeTimeout has timed out', () => {
    const elevenMinutesAgo = new Date(NOW.getTime() - 11 * 60_000).toISOString();
    const nineMinutesAgo = new Date(NOW.getTime() - 9 * 60_000).toISOString();
    expect(cascade(p, { 'etcd-w': ['Updating', elevenMinutesAgo] })).toEqual({ kind: 'timedOut', nodes: ['etcd-w'] });
    expect(cascade(p, { 'etcd-w': ['Updating', nineMinutesAgo] })).toMatchObject({ kind: 'wait' });
  });

  it('never starts a server while a worker is in flight (e.g. after a plan change)', () => {
    expect(cascade(p, { 'w-a': 'Updating' })).toEqual({ kind: 'wait', reason: 'InFlight', inFlight: ['w-a'] });
  });
});

describe('nextStep invariants over whole simulated runs', () => {
  // Drives the cascade to the end, finishing in-flight nodes in a pseudo-random
  // order, and checks the invariants at every step.
  function run(p: Plan, seed: number): string[] {
    let rnd = seed;
    const random = (): number => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const progress = new Map<string, NodeProgress>();
    const started: string[] = [];
    for (let guard = 0; guard < 1000; guard++) {
      const step = nextStep({ plan: p, progress, paused: false, onFailure: 'Rollback', nodeTimeoutMs: 1e9, now: NOW });
      if (step.kind === 'done') return started;
      if (step.kind === 'start') {
        for (const n of step.nodes) {
          progress.set(n.name, { phase: 'Updating', startedAt: NOW.toISOString() });
          started.push(n.name);
        }
      } else if (step.kind === 'wait') {
        const flying = step.inFlight;
        progress.set(flying[Math.floor(random() * flying.length)]!, { phase: 'Rotated' });
      } else {
        throw new Error(`unexpected ${step.kind}`);
      }
      const inFlight = p.nodes.filter((n) => progress.get(n.name)?.phase === 'Updating');
      const serversFlying = inFlight.filter((n) => n.kind === 'server').length;
      expect(serversFlying).toBeLessThanOrEqual(1);
      if (serversFlying === 1) expect(inFlight).toHaveLength(1);
      expect(inFlight.filter((n) => n.kind === 'worker').length).toBeLessThanOrEqual(p.maxUnavailable);
      if (inFlight.some((n) => n.kind === 'worker')) {
        expect(p.nodes.filter((n) => n.kind === 'server').every((n) => progress.get(n.name)?.phase === 'Rotated')).toBe(true);
      }
    }
    throw new Error('did not finish');
  }

  it.each([1, 2, 3, 7])('maxUnavailable %d: every node once, servers in plan order first', (maxUnavailable) => {
    const workers = Array.from({ length: 20 }, (_, i) => rke2Node(`w-${String(i).padStart(2, '0')}`));
    const p = plan({ nodes: [...rke2Cluster, ...workers], distribution: 'rke2', maxUnavailable });
    for (const seed of [1, 42, 4242]) {
      const started = run(p, seed);
      expect([...started].sort()).toEqual([...names(p)].sort());
      const serverCount = p.nodes.filter((n) => n.kind === 'server').length;
      expect(started.slice(0, serverCount)).toEqual(names(p).slice(0, serverCount));
    }
  });
});
