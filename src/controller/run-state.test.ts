import { describe, expect, it } from '@jest/globals';
import type { CertificateRotation, NodeStatus } from '../api/certificaterotation.js';
import { MAX_SKIPPED_LISTED } from '../api/constants.js';
import type { NodeRotation } from '../api/noderotation.js';
import { compactRun, countRun, planFromStatus, rebuildRun, rotatedNodes, runFingerprint, settled, STOPPED_WITH_MESSAGE, type RunSources } from './run-state.js';
import { rke2Node } from './testing.js';

const spec: CertificateRotation['spec'] = { scope: 'All', mode: 'Apply', paused: false, strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback' } };

describe('runFingerprint', () => {
  it.each<[string, Partial<CertificateRotation['spec']>, boolean]>([
    ['paused', { paused: true }, true],
    ['maxUnavailable', { strategy: { ...spec.strategy, maxUnavailable: 5 } }, true],
    ['nodeTimeout and onFailure', { strategy: { ...spec.strategy, nodeTimeout: '1m', onFailure: 'Halt' } }, true],
    ['scope/service', { scope: 'Service', service: 'etcd' }, false],
    ['mode', { mode: 'Plan' }, false],
    ['distribution', { distribution: 'rke2' }, false],
    ['nodeSelector', { strategy: { ...spec.strategy, nodeSelector: { matchLabels: { a: 'b' } } } }, false],
  ])('changing %s keeps it: %s', (_what, change, same) => {
    expect(runFingerprint({ ...spec, ...change }) === runFingerprint(spec)).toBe(same);
  });
});

describe('settled', () => {
  const r = (status: CertificateRotation['status'], generation = 1): CertificateRotation => ({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: 'x', generation }, spec, status });
  it.each<[string, CertificateRotation, boolean]>([
    ['new object', r({ observedGeneration: -1 }), false],
    ['succeeded, same generation', r({ observedGeneration: 1, phase: 'Succeeded' }), true],
    ['succeeded, spec changed since', r({ observedGeneration: 1, phase: 'Succeeded' }, 2), false],
    ['run failed', r({ observedGeneration: 1, phase: 'Failed', runGeneration: 1 }), true],
    ['planned', r({ observedGeneration: 1, phase: 'Planned' }), true],
    ['progressing', r({ observedGeneration: 1, phase: 'Progressing' }), false],
    ['pre-run problem (may heal when nodes change)', r({ observedGeneration: 1, phase: 'Failed', conditions: [{ type: 'Stalled', status: 'True', reason: 'DistributionUnknown', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }] }), false],
  ])('%s → %s', (_n, rotation, expected) => expect(settled(rotation)).toBe(expected));
});

describe('planFromStatus', () => {
  it('keeps the recorded order and kinds, batching workers by the current maxUnavailable', () => {
    const plan = planFromStatus('rke2', { ...spec, strategy: { ...spec.strategy, maxUnavailable: 2 } }, [
      { name: 'z-server', role: 'etcd,controlplane', phase: 'Rotated' },
      { name: 'a-server', role: 'etcd', phase: 'Pending' },
      { name: 'w1', role: 'worker', phase: 'Pending' },
      { name: 'w2', role: 'worker', phase: 'Pending' },
      { name: 'w3', role: 'worker', phase: 'Pending' },
    ]);
    expect(plan.nodes.map((n) => [n.name, n.kind, n.batch])).toEqual([
      ['z-server', 'server', 0], ['a-server', 'server', 1], ['w1', 'worker', 2], ['w2', 'worker', 2], ['w3', 'worker', 3],
    ]);
  });
});

describe('rebuildRun: the whole run from status.nodes, the NodeRotations and the Node cache', () => {
  const STARTED = '2026-09-01T10:00:00Z';
  const node = (name: string, roles: { etcd?: boolean; cp?: boolean }, created?: string, labels: Record<string, string> = {}) => {
    const n = rke2Node(name, roles);
    n.metadata!.labels = { ...n.metadata!.labels, ...labels };
    if (created) n.metadata!.creationTimestamp = created as unknown as Date;
    return n;
  };
  const nr = (nodeName: string, role: string, status?: Partial<NodeRotation['status']>): NodeRotation =>
    ({
      apiVersion: 'certrotator.io/v1alpha1',
      kind: 'NodeRotation',
      metadata: { name: `r-g1-${nodeName}` },
      spec: { rotation: 'r', generation: 1, runID: 'uid-g1', nodeName, role, action: 'Rotate', distribution: 'rke2', scope: 'All', services: [], restart: true, timeout: '10m', onFailure: 'Rollback' },
      ...(status ? { status: { phase: 'Pending', ...status } } : {}),
    }) as NodeRotation;
  const base = { distribution: 'rke2' as const, runSpec: { scope: 'All' as const }, startedAt: STARTED };
  const phases = (entries: NodeStatus[]) => entries.map((e) => `${e.name}:${e.phase}`);

  it.each<[string, Partial<RunSources>, string[]]>([
    ['nothing started: every selected node Pending, servers first (etcd before etcd+cp), then workers by name',
      { nodes: [node('w2', {}), node('s2', { etcd: true, cp: true }), node('w1', {}), node('s1', { etcd: true })] }, ['s1:Pending', 's2:Pending', 'w1:Pending', 'w2:Pending']],
    ['a node whose NodeRotation reports Rotated is Rotated; one recorded in status.nodes is as recorded',
      { nodes: [node('s1', { etcd: true }), node('w1', {}), node('w2', {})], nodeRotations: [nr('s1', 'etcd', { phase: 'Rotated', finishedAt: STARTED })], recorded: [{ name: 'w1', role: 'worker', phase: 'Updating', startedAt: STARTED }] }, ['s1:Rotated', 'w1:Updating', 'w2:Pending']],
    ['the record wins over a report not taken in yet (the cascade takes it in)',
      { nodes: [node('w1', {})], nodeRotations: [nr('w1', 'worker', { phase: 'Rotated' })], recorded: [{ name: 'w1', role: 'worker', phase: 'Updating' }] }, ['w1:Updating']],
    ['a report about another run (runID) is not Rotated',
      { nodes: [node('w1', {})], nodeRotations: [nr('w1', 'worker', { phase: 'Rotated', runID: 'uid-g0' })] }, ['w1:Pending']],
    ['a node created after the run started is not in it; one created in the same second is',
      { nodes: [node('w1', {}, '2026-09-01T10:00:00Z'), node('w2', {}, '2026-09-01T10:00:01Z')] }, ['w1:Pending']],
    ['a node the selector no longer selects leaves the plan unless the run touched it',
      { runSpec: { scope: 'All', nodeSelector: { matchLabels: { pool: 'a' } } }, nodes: [node('w1', {}, undefined, { pool: 'a' }), node('w2', {}), node('w3', {})], nodeRotations: [nr('w3', 'worker', { phase: 'Rotated' })] }, ['w1:Pending', 'w3:Rotated']],
    ['a Node gone: Pending, it leaves the plan; Rotated or recorded, it stays',
      { nodes: [], nodeRotations: [nr('w1', 'worker', { phase: 'Rotated' })], recorded: [{ name: 's1', role: 'etcd', phase: 'Updating' }] }, ['s1:Updating', 'w1:Rotated']],
    ['a service only servers have: workers are not planned',
      { runSpec: { scope: 'Service', service: 'etcd' }, nodes: [node('s1', { etcd: true }), node('w1', {})] }, ['s1:Pending']],
  ])('%s', (_name, src, expected) => {
    expect(phases(rebuildRun({ ...base, recorded: [], nodes: [], nodeRotations: [], ...src }))).toEqual(expected);
  });
});

describe('compactRun: what status.nodes keeps', () => {
  const e = (name: string, phase: NodeStatus['phase'], extra: Partial<NodeStatus> = {}): NodeStatus => ({ name, role: 'worker', phase, ...extra });
  it('drops Pending and Rotated, keeps Updating, Failed and RolledBack in order', () => {
    const kept = compactRun([e('a', 'Rotated'), e('b', 'Updating'), e('c', 'Failed', { message: 'x' }), e('d', 'Pending'), e('f', 'RolledBack')]);
    expect(kept.map((n) => `${n.name}:${n.phase}`)).toEqual(['b:Updating', 'c:Failed', 'f:RolledBack']);
  });
  it(`keeps the message of the first ${STOPPED_WITH_MESSAGE} stopped nodes only`, () => {
    const kept = compactRun(Array.from({ length: 8 }, (_, i) => e(`n${i}`, 'Failed', { message: `m${i}`, step: 'Verifying' })));
    expect(kept.map((n) => n.message)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', undefined, undefined, undefined]);
    expect(kept.every((n) => n.step === 'Verifying')).toBe(true);
  });
  it(`keeps the latest ${MAX_SKIPPED_LISTED} Skipped`, () => {
    const skipped = Array.from({ length: MAX_SKIPPED_LISTED + 3 }, (_, i) => e(`s${String(i).padStart(2, '0')}`, 'Skipped', { finishedAt: new Date(Date.UTC(2026, 8, 1, 10, i)).toISOString() }));
    const kept = compactRun(skipped);
    expect(kept).toHaveLength(MAX_SKIPPED_LISTED);
    expect(kept[0]!.name).toBe('s03');
  });
});

describe('countRun and rotatedNodes', () => {
  it('counts per role in plan order', () => {
    expect(countRun([
      { name: 's1', role: 'etcd', phase: 'Rotated' },
      { name: 'w1', role: 'worker', phase: 'Updating' },
      { name: 'w2', role: 'worker', phase: 'RolledBack' },
      { name: 'w3', role: 'worker', phase: 'Pending' },
      { name: 'w4', role: 'worker', phase: 'Skipped' },
    ])).toEqual([
      { role: 'etcd', planned: 1, pending: 0, updating: 0, rotated: 1, failed: 0, skipped: 0 },
      { role: 'worker', planned: 4, pending: 1, updating: 1, rotated: 0, failed: 1, skipped: 1 },
    ]);
  });
  it("rotatedNodes: the latest run's Rotated reports, with when each finished", () => {
    const rotation = { metadata: { name: 'r' }, spec, status: { observedGeneration: 2, runGeneration: 2, completedAt: '2026-09-01T11:00:00Z' } } as CertificateRotation;
    const mk = (nodeName: string, generation: number, phase: string, finishedAt?: string, action = 'Rotate') =>
      ({ metadata: { name: nodeName }, spec: { nodeName, generation, action, runID: 'x' }, status: { phase, ...(finishedAt ? { finishedAt } : {}) } }) as unknown as NodeRotation;
    const got = rotatedNodes(rotation, [
      mk('a', 2, 'Rotated', '2026-09-01T10:30:00Z'),
      mk('b', 2, 'Rotated'),
      mk('c', 1, 'Rotated', '2026-08-01T10:00:00Z'),
      mk('d', 2, 'Failed', '2026-09-01T10:40:00Z'),
      mk('e', 2, 'Checked', '2026-09-01T10:40:00Z', 'Check'),
    ]);
    expect(Object.fromEntries(got)).toEqual({ a: Date.parse('2026-09-01T10:30:00Z'), b: Date.parse('2026-09-01T11:00:00Z') });
  });
});
