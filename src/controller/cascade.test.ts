// decideCascade: one pass of the cascade as a table of (recorded nodes,
// agent reports, clock) → (new node phases, objects to create).
import { describe, expect, it } from '@jest/globals';
import type { CertificateRotation, NodeStatus } from '../api/certificaterotation.js';
import { nodeRotationName } from '../api/names.js';
import type { NodeRotation, NodeRotationStatus } from '../api/noderotation.js';
import { decideCascade } from './cascade.js';
import { buildNodeRotation } from './node-rotation.js';
import { planFromStatus } from './run-state.js';

const NOW = new Date('2026-09-01T10:00:00Z');
const T0 = '2026-09-01T09:59:00Z';

function rotation(strategy: Partial<CertificateRotation['spec']['strategy']> = {}, paused = false): CertificateRotation {
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'CertificateRotation',
    metadata: { name: 'r', uid: 'u', generation: 1, resourceVersion: '1' },
    spec: { scope: 'All', mode: 'Apply', paused, strategy: { maxUnavailable: 2, nodeTimeout: '10m', onFailure: 'Rollback', ...strategy } },
  };
}

const S = 'etcd,controlplane';
const W = 'worker';
function n(name: string, role: string, phase: NodeStatus['phase'], startedAt?: string): NodeStatus {
  return { name, role, phase, ...(startedAt ? { startedAt } : {}) };
}

function nr(r: CertificateRotation, node: NodeStatus, status?: Partial<NodeRotationStatus>): NodeRotation {
  const plan = planFromStatus('rke2', r.spec, [node]);
  const obj = buildNodeRotation(r, 1, 'rke2', plan.nodes[0]!);
  return status ? { ...obj, status: { phase: 'Pending', ...status } } : obj;
}

interface Row {
  name: string;
  nodes: NodeStatus[];
  reports?: [string, Partial<NodeRotationStatus> | undefined][];
  rotation?: CertificateRotation;
  now?: Date;
  phases: string[];
  /** Created after the status write (their intent is this pass's). */
  create: string[];
  /** status.nextNodes of the status the pass reads. */
  reserved?: string[];
  /** Created before the write: their intent an earlier write recorded (in flight, or named next). None when absent. */
  createFirst?: string[];
  /** status.nextNodes the pass writes; not checked when absent. */
  next?: string[];
  /** The Events the pass emits, by reason; none when absent (checked either way). */
  events?: string[];
  /** Nodes whose Node object is gone. */
  deleted?: string[];
}

const rows: Row[] = [
  { name: 'first pass starts the first server only', nodes: [n('s1', S, 'Pending'), n('s2', S, 'Pending'), n('w1', W, 'Pending')], phases: ['Updating', 'Pending', 'Pending'], create: ['r-g1-s1'], events: ['NodeStarted'] },
  { name: 'a server in flight without a report: wait', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reports: [['s1', { phase: 'Updating', step: 'Renewing' }]], phases: ['Updating', 'Pending'], create: [] },
  { name: 'server rotated: the hand-off starts the next server in the same pass', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reports: [['s1', { phase: 'Rotated', step: 'Done' }]], phases: ['Rotated', 'Updating'], create: ['r-g1-s2'], events: ['NodeRotated', 'NodeStarted'] },
  { name: 'last server rotated: workers start maxUnavailable at a time', nodes: [n('s1', S, 'Updating', T0), n('w1', W, 'Pending'), n('w2', W, 'Pending'), n('w3', W, 'Pending')], reports: [['s1', { phase: 'Rotated' }]], phases: ['Rotated', 'Updating', 'Updating', 'Pending'], create: ['r-g1-w1', 'r-g1-w2'], events: ['NodeRotated', 'NodeStarted'] },
  { name: 'workers finishing and starting in one pass: one Event per kind, not one per node', nodes: [n('w1', W, 'Updating', T0), n('w2', W, 'Updating', T0), n('w3', W, 'Pending'), n('w4', W, 'Pending')], reports: [['w1', { phase: 'Rotated' }], ['w2', { phase: 'Rotated' }]], phases: ['Rotated', 'Rotated', 'Updating', 'Updating'], create: ['r-g1-w3', 'r-g1-w4'], events: ['NodeRotated', 'NodeStarted'] },
  { name: 'failures are never combined', nodes: [n('w1', W, 'Updating', T0), n('w2', W, 'Updating', T0)], reports: [['w1', { phase: 'Failed' }], ['w2', { phase: 'RolledBack' }]], phases: ['Failed', 'RolledBack'], create: [], events: ['NodeFailed', 'NodeRolledBack'] },
  { name: 'one worker slot frees: one more starts (rolling window)', nodes: [n('w1', W, 'Updating', T0), n('w2', W, 'Updating', T0), n('w3', W, 'Pending')], reports: [['w1', { phase: 'Rotated' }], ['w2', { phase: 'Updating' }]], phases: ['Rotated', 'Updating', 'Updating'], create: ['r-g1-w3'], events: ['NodeRotated', 'NodeStarted'] },
  { name: 'intent recorded, object missing (crash between writes): create it again, before the write', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], phases: ['Updating', 'Pending'], create: [], createFirst: ['r-g1-s1'], next: ['s2'] },
  // status.nextNodes: a node an earlier write named next starts without waiting for this pass's write.
  { name: 'server rotated, the next server named next: created before the write', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending'), n('w1', W, 'Pending')], reserved: ['s2', 'w1'], reports: [['s1', { phase: 'Rotated' }]], phases: ['Rotated', 'Updating', 'Pending'], create: [], createFirst: ['r-g1-s2'], next: ['w1'], events: ['NodeRotated', 'NodeStarted'] },
  { name: 'last server rotated: the workers named next go first, the others after the write', nodes: [n('s1', S, 'Updating', T0), n('w1', W, 'Pending'), n('w2', W, 'Pending'), n('w3', W, 'Pending')], reserved: ['w1'], reports: [['s1', { phase: 'Rotated' }]], phases: ['Rotated', 'Updating', 'Updating', 'Pending'], create: ['r-g1-w2'], createFirst: ['r-g1-w1'], next: ['w3'], events: ['NodeRotated', 'NodeStarted'] },
  { name: 'named next but no slot free: nothing is created', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reserved: ['s2'], reports: [['s1', { phase: 'Updating' }]], phases: ['Updating', 'Pending'], create: [], next: ['s2'] },
  { name: 'paused: a node named next is not started, and stays named', rotation: rotation({}, true), nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reserved: ['s2'], reports: [['s1', { phase: 'Rotated' }]], phases: ['Rotated', 'Pending'], create: [], next: ['s2'], events: ['NodeRotated'] },
  // Adoption: a pass created a node named next, then lost its write (409, crash).
  { name: 'a node named next has a NodeRotation: it started (its write was lost), so it holds the slot', rotation: rotation({}, true), nodes: [n('s1', S, 'Rotated'), n('s2', S, 'Pending'), n('s3', S, 'Pending')], reserved: ['s2', 's3'], reports: [['s2', { phase: 'Updating' }]], phases: ['Rotated', 'Updating', 'Pending'], create: [], next: ['s3'], events: ['NodeStarted'] },
  { name: 'a node named next that already reported: adopted and taken in the same pass, the next one starts', nodes: [n('s1', S, 'Rotated'), n('s2', S, 'Pending'), n('s3', S, 'Pending')], reserved: ['s2', 's3'], reports: [['s2', { phase: 'Rotated' }]], phases: ['Rotated', 'Rotated', 'Updating'], create: [], createFirst: ['r-g1-s3'], next: [], events: ['NodeStarted', 'NodeRotated'] },
  { name: 'a NodeRotation of a node not named next is not adopted (the status never said it may start)', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reports: [['s1', { phase: 'Updating' }], ['s2', { phase: 'Updating' }]], phases: ['Updating', 'Pending'], create: [], next: ['s2'] },
  { name: 'rolled back: nothing more starts', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reports: [['s1', { phase: 'RolledBack', step: 'Verifying', message: 'no' }]], phases: ['RolledBack', 'Pending'], create: [], events: ['NodeRolledBack'] },
  { name: 'a worker failed while others fly: they finish, nothing new', nodes: [n('w1', W, 'Updating', T0), n('w2', W, 'Updating', T0), n('w3', W, 'Pending')], reports: [['w1', { phase: 'Failed' }], ['w2', { phase: 'Updating' }]], phases: ['Failed', 'Updating', 'Pending'], create: [], events: ['NodeFailed'] },
  { name: 'paused: the finished node is recorded, nothing starts', rotation: rotation({}, true), nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reports: [['s1', { phase: 'Rotated' }]], phases: ['Rotated', 'Pending'], create: [], events: ['NodeRotated'] },
  { name: 'overran nodeTimeout: Failed, nothing starts', now: new Date('2026-09-01T10:10:01Z'), nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reports: [['s1', { phase: 'Updating', step: 'Restarting' }]], phases: ['Failed', 'Pending'], create: [], events: ['NodeTimedOut'] },
  { name: 'a report about another run is not taken', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reports: [['s1', { phase: 'Rotated', runID: 'other-g7' }]], phases: ['Updating', 'Pending'], create: [] },
  { name: 'a pending server whose Node was deleted is skipped: the next one starts', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending'), n('s3', S, 'Pending')], reports: [['s1', { phase: 'Rotated' }]], deleted: ['s2'], phases: ['Rotated', 'Skipped', 'Updating'], create: ['r-g1-s3'], events: ['NodeRotated', 'NodeSkipped', 'NodeStarted'] },
  { name: 'a server in flight whose Node was deleted is skipped, not awaited until nodeTimeout: the next one starts', nodes: [n('s1', S, 'Updating', T0), n('s2', S, 'Pending')], reports: [['s1', { phase: 'Updating', step: 'Restarting' }]], deleted: ['s1'], phases: ['Skipped', 'Updating'], create: ['r-g1-s2'], events: ['NodeSkipped', 'NodeStarted'] },
  { name: 'a deleted Node that had already rotated stays Rotated', nodes: [n('s1', S, 'Rotated'), n('w1', W, 'Pending')], deleted: ['s1'], phases: ['Rotated', 'Updating'], create: ['r-g1-w1'], events: ['NodeStarted'] },
  { name: 'all done: nothing to do', nodes: [n('s1', S, 'Rotated'), n('w1', W, 'Rotated')], phases: ['Rotated', 'Rotated'], create: [] },
];

describe('decideCascade', () => {
  it.each(rows)('$name', (row) => {
    const r = row.rotation ?? rotation();
    const byName = new Map(row.nodes.map((x) => [x.name, x]));
    const reports = (row.reports ?? []).map(([name, st]) => nr(r, byName.get(name)!, st));
    // Nodes in flight with no row in `reports` that are not "missing" cases get a Pending object.
    for (const x of row.nodes) {
      if (x.phase === 'Updating' && !row.reports?.some(([name]) => name === x.name) && !row.name.startsWith('intent')) reports.push(nr(r, x, {}));
    }
    const before = structuredClone(row.nodes);
    const deleted = new Set(row.deleted ?? []);
    const d = decideCascade({ rotation: r, distribution: 'rke2', runGeneration: 1, nodes: row.nodes, nodeRotations: reports, now: row.now ?? NOW, nodeExists: (x) => !deleted.has(x), reserved: row.reserved });
    expect(d.nodes.map((x) => x.phase)).toEqual(row.phases);
    for (const x of d.nodes.filter((e) => e.phase === 'Skipped')) expect(x).toMatchObject({ reason: 'NodeDeleted', message: expect.stringMatching(/^the Node was deleted/) });
    const names = (list: string[]) => list.map((c) => nodeRotationName('r', 1, c.replace(/^r-g1-/, '')));
    expect(d.create.map((x) => x.metadata.name)).toEqual(names(row.create));
    expect(d.createFirst.map((x) => x.metadata.name)).toEqual(names(row.createFirst ?? []));
    if (row.next) expect(d.next).toEqual(row.next);
    expect(d.events.map((e) => e.reason)).toEqual(row.events ?? []);
    // Input is never mutated: the caller may retry with it after a conflict.
    expect(row.nodes).toEqual(before);
  });

  it('records the agent step and message on the node, and a timeout with its reason and last step', () => {
    const r = rotation();
    const failed = decideCascade({
      rotation: r, distribution: 'rke2', runGeneration: 1, now: NOW,
      nodes: [n('s1', S, 'Updating', T0)],
      nodeRotations: [nr(r, n('s1', S, 'Updating'), { phase: 'RolledBack', step: 'Verifying', message: 'kube-apiserver served the old serial' })],
    });
    expect(failed.nodes[0]).toMatchObject({ phase: 'RolledBack', step: 'Verifying', message: 'kube-apiserver served the old serial' });
    const timedOut = decideCascade({
      rotation: r, distribution: 'rke2', runGeneration: 1, now: new Date('2026-09-01T10:20:00Z'),
      nodes: [n('s1', S, 'Updating', T0)],
      nodeRotations: [nr(r, n('s1', S, 'Updating'), { phase: 'Updating', step: 'Restarting' })],
    });
    expect(timedOut.nodes[0]).toMatchObject({ phase: 'Failed', reason: 'NodeTimeout', step: 'Restarting', finishedAt: '2026-09-01T10:20:00Z' });
    expect(timedOut.nodes[0]!.message).toContain('nodeTimeout (10m)');
  });

  it('names every node of a combined Event, and says how many did not fit', () => {
    const r = rotation({ maxUnavailable: 2 });
    const d = decideCascade({
      rotation: r, distribution: 'rke2', runGeneration: 1, now: NOW,
      nodes: [n('w1', W, 'Updating', T0), n('w2', W, 'Updating', T0), n('w3', W, 'Pending'), n('w4', W, 'Pending')],
      nodeRotations: [nr(r, n('w1', W, 'Updating'), { phase: 'Rotated' }), nr(r, n('w2', W, 'Updating'), { phase: 'Rotated' })],
    });
    expect(d.events.map((e) => e.message)).toEqual(['2 worker nodes rotated: w1 in 60s, w2 in 60s', expect.stringMatching(/^rotating 2 worker nodes \(.*kubelet.*\): w3, w4$/)]);

    const many = Array.from({ length: 200 }, (_, i) => n(`rke2-worker-${i}`, W, 'Updating', T0));
    const all = decideCascade({
      rotation: rotation({ maxUnavailable: 200 }), distribution: 'rke2', runGeneration: 1, now: NOW, nodes: many,
      nodeRotations: many.map((x) => nr(r, x, { phase: 'Rotated' })),
    });
    expect(all.events).toHaveLength(1);
    const text = all.events[0]!.message;
    expect(text.length).toBeLessThanOrEqual(1024);
    expect(text).toMatch(/^200 worker nodes rotated: rke2-worker-0 in 60s, .* and \d+ more$/);
    const shown = text.split(': ')[1]!.split(', ').length;
    expect(Number(text.match(/and (\d+) more$/)![1]) + shown).toBe(200);
  });

  it('only workers\' routine starts and finishes may wait for a window (event-window.ts); servers and failures never', () => {
    const r = rotation({ maxUnavailable: 2 });
    const last = decideCascade({
      rotation: r, distribution: 'rke2', runGeneration: 1, now: NOW,
      nodes: [n('s1', S, 'Updating', T0), n('w1', W, 'Pending'), n('w2', W, 'Pending')],
      nodeRotations: [nr(r, n('s1', S, 'Updating'), { phase: 'Rotated' })],
    });
    expect(last.events.map((e) => [e.reason, e.window === true])).toEqual([['NodeRotated', false], ['NodeStarted', true]]);
    const workers = decideCascade({
      rotation: r, distribution: 'rke2', runGeneration: 1, now: NOW,
      nodes: [n('w1', W, 'Updating', T0), n('w2', W, 'Updating', T0), n('w3', W, 'Pending')],
      nodeRotations: [nr(r, n('w1', W, 'Updating'), { phase: 'Rotated' }), nr(r, n('w2', W, 'Updating'), { phase: 'Failed' })],
    });
    expect(workers.events.map((e) => [e.reason, e.window === true, e.parts?.length])).toEqual([['NodeRotated', true, 1], ['NodeFailed', false, undefined]]);
  });

  it('does not adopt a NodeRotation of a node named next that another run made (a rotation deleted and made again under its name)', () => {
    const r = rotation({}, true);
    const old = nr(r, n('s2', S, 'Pending'), { phase: 'Updating' });
    old.spec = { ...old.spec, runID: 'uid-of-the-deleted-one-g1' };
    const d = decideCascade({ rotation: r, distribution: 'rke2', runGeneration: 1, now: NOW, nodes: [n('s1', S, 'Rotated'), n('s2', S, 'Pending')], nodeRotations: [old], reserved: ['s2'] });
    expect(d.nodes.map((x) => x.phase)).toEqual(['Rotated', 'Pending']);
    expect(d.events).toEqual([]);
  });

  it('asks to be woken at the earliest deadline of a node in flight', () => {
    const r = rotation({ nodeTimeout: '5m' });
    const d = decideCascade({ rotation: r, distribution: 'rke2', runGeneration: 1, now: NOW, nodes: [n('s1', S, 'Updating', T0)], nodeRotations: [nr(r, n('s1', S, 'Updating'), {})] });
    expect(d.requeueAfterMs).toBe(4 * 60_000 + 1000);
  });

  it('builds the NodeRotation the agent contract needs: owner, labels, runID, services, timeout, onFailure', () => {
    const r = rotation({ onFailure: 'Halt', nodeTimeout: '3m' });
    const d = decideCascade({ rotation: r, distribution: 'rke2', runGeneration: 1, now: NOW, nodes: [n('s1', S, 'Pending')], nodeRotations: [] });
    const obj = d.create[0]!;
    expect(obj.metadata.labels).toEqual({ 'certrotator.io/rotation': 'r', 'certrotator.io/generation': '1', 'certrotator.io/node': 's1' });
    expect(obj.metadata.ownerReferences).toEqual([{ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', name: 'r', uid: 'u', controller: true }]);
    expect(obj.spec).toMatchObject({ rotation: 'r', generation: 1, runID: 'u-g1', nodeName: 's1', role: S, distribution: 'rke2', scope: 'All', timeout: '3m', onFailure: 'Halt', restart: true });
    expect(obj.spec.services).toContain('etcd');
  });
});
