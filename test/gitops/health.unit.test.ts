// The Argo CD health check for CertificateRotation, run by a real Lua 5.1, on
// (1) the cases in its Argo-format health_test.yaml and (2) every status the
// controller's own summarizeRun produces; and the same statuses held to the
// kstatus rules Flux and `kubectl wait` rely on.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { NodePhase } from '../../src/api/constants.js';
import { mergeConditions, summarizeRun, type RunNodeProgress, type RunState } from '../../src/controller/conditions.js';
import { planRotation } from '../../src/controller/plan.js';
import { rke2Node } from '../../src/controller/testing.js';
import { REPO_ROOT } from '../cluster/paths.js';
import { WEEKDAYS } from '../../src/api/certificaterotationpolicy.js';
import { reconcilePolicy } from '../../src/controller/policy/reconcile-policy.js';
import { FakePolicyCluster, inventory, policy } from '../../src/controller/policy/testing.js';
import { argoHealth, HEALTH_DIR, HEALTH_LUA, luaVersion } from './health.js';
import { kstatus } from './kstatus.js';

interface HealthCase {
  healthStatus: { status: string; message: string };
  inputPath: string;
}
const cases = (parse(readFileSync(join(HEALTH_DIR, 'health_test.yaml'), 'utf8')) as { tests: HealthCase[] }).tests;
const input = (c: HealthCase): any => parse(readFileSync(join(HEALTH_DIR, c.inputPath), 'utf8'));

describe('Argo CD health check (health.lua)', () => {
  it('runs on gopher-lua, the Lua 5.1 Argo CD embeds (or, without the build, a system Lua 5.1)', () => {
    expect(luaVersion()).toMatch(/^(gopher-lua v\d+\.\d+\.\d+ \(Lua 5\.1\)|Lua 5\.1)/);
  });

  it('covers every health status it can return, each at least once', () => {
    expect(new Set(cases.map((c) => c.healthStatus.status))).toEqual(new Set(['Healthy', 'Progressing', 'Degraded', 'Suspended']));
  });

  it.each(cases.map((c) => [c.inputPath, c] as const))('%s', (_path, c) => {
    expect(argoHealth(input(c))).toEqual(c.healthStatus);
  });

  it('is embedded byte for byte in the argocd-cm patch, for rotations and for policies', () => {
    const cm = parse(readFileSync(join(REPO_ROOT, 'gitops', 'argocd', 'argocd-cm-patch.yaml'), 'utf8')) as { data: Record<string, string> };
    expect(Object.keys(cm.data).sort()).toEqual(['resource.customizations.health.certrotator.io_CertificateRotation', 'resource.customizations.health.certrotator.io_CertificateRotationPolicy']);
    for (const script of Object.values(cm.data)) expect(script).toBe(readFileSync(HEALTH_LUA, 'utf8'));
  });

  it('a script error is reported, not read as a status (the harness can fail)', () => {
    expect(() => argoHealth({}, 'return obj.metadata.name')).toThrow(/health.lua failed/);
  });
});

// Every kind of status the controller writes, from its own pure summary function.
const planned = planRotation({
  nodes: [rke2Node('s1', { etcd: true, cp: true }), rke2Node('s2', { etcd: true, cp: true }), rke2Node('w1'), rke2Node('w2')],
  distribution: 'rke2',
  scope: 'All',
  maxUnavailable: 2,
});
if (!planned.ok) throw new Error(planned.message);
const plan = planned.plan;
const G = 3;
function run(phases: Record<string, NodePhase | RunNodeProgress>, extra: Partial<RunState> = {}): RunState {
  const progress = new Map(Object.entries(phases).map(([n, p]) => [n, typeof p === 'string' ? { phase: p } : p]));
  return { generation: G, mode: 'Apply', paused: false, plan, progress, ...extra };
}
const STATES: [string, RunState, 'Healthy' | 'Progressing' | 'Degraded' | 'Suspended'][] = [
  ['planning', { generation: G, mode: 'Apply', paused: false, progress: new Map() }, 'Progressing'],
  ['queued', run({}, { queuedBehind: 'other' }), 'Progressing'],
  ['no such service', run({}, { plan: undefined, problem: { reason: 'ServiceNotInDistribution', message: 'x' } }), 'Degraded'],
  ['Plan mode', run({}, { mode: 'Plan' }), 'Healthy'],
  ['server in flight', run({ s1: 'Updating' }), 'Progressing'],
  ['between nodes', run({ s1: 'Rotated' }), 'Progressing'],
  ['paused between nodes', run({ s1: 'Rotated' }, { paused: true }), 'Suspended'],
  ['paused with a node in flight', run({ s1: 'Rotated', s2: 'Updating' }, { paused: true }), 'Suspended'],
  ['rolled back', run({ s1: { phase: 'RolledBack', step: 'Verifying', message: 'old serial served' } }), 'Degraded'],
  ['worker failed, another still in flight', run({ s1: 'Rotated', s2: 'Rotated', w1: 'Failed', w2: 'Updating' }), 'Degraded'],
  ['succeeded', run({ s1: 'Rotated', s2: 'Rotated', w1: 'Rotated', w2: 'Rotated' }), 'Healthy'],
  ['succeeded, then paused', run({ s1: 'Rotated', s2: 'Rotated', w1: 'Rotated', w2: 'Rotated' }, { paused: true }), 'Healthy'],
];

function objectFor(state: RunState, generation = state.generation): any {
  const s = summarizeRun(state);
  const conditions = mergeConditions(undefined, s.conditions, { now: new Date('2026-01-01T00:00:00Z'), observedGeneration: s.observedGeneration });
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'CertificateRotation',
    metadata: { name: 'r', generation },
    spec: { scope: 'All', mode: state.mode, paused: state.paused },
    status: { observedGeneration: s.observedGeneration, phase: s.phase, progress: s.progress, conditions },
  };
}
const cond = (o: any, type: string): any => o.status.conditions.find((c: any) => c.type === type);

describe('the controller\'s statuses', () => {
  it.each(STATES)('%s: Argo CD health', (_name, state, health) => {
    expect(argoHealth(objectFor(state)).status).toBe(health);
  });

  it.each(STATES)('%s: kstatus rules (one condition per type, abnormal-true polarity, Current iff Ready)', (_name, state) => {
    const o = objectFor(state);
    const types = o.status.conditions.map((c: any) => c.type);
    expect(new Set(types).size).toBe(types.length);
    for (const t of ['Ready', 'Reconciling', 'Stalled']) expect(cond(o, t)).toBeDefined();
    const k = kstatus(o);
    const ready = cond(o, 'Ready').status === 'True';
    // `kubectl wait --for=condition=Ready` and kstatus Current agree...
    expect(k.status === 'Current').toBe(ready);
    // ...Stalled=True never reads as Current (Failed, or InProgress while nodes in flight finish)...
    if (cond(o, 'Stalled').status === 'True') expect(k.status).not.toBe('Current');
    if (cond(o, 'Stalled').status === 'True' && cond(o, 'Reconciling').status !== 'True') expect(k.status).toBe('Failed');
    // ...and Ready never coexists with Reconciling or Stalled.
    if (ready) expect([cond(o, 'Reconciling').status, cond(o, 'Stalled').status]).toEqual(['False', 'False']);
    // Each condition carries the generation it describes.
    for (const c of o.status.conditions) expect(c.observedGeneration).toBe(G);
  });

  it.each(STATES)('%s: a newer spec generation reads as in progress everywhere', (_name, state) => {
    const o = objectFor(state, G + 1);
    expect(kstatus(o).status).toBe('InProgress');
    expect(argoHealth(o)).toEqual({ status: 'Progressing', message: `Waiting for the controller to observe generation ${G + 1}` });
  });

  it('a brand-new object (observedGeneration -1, the schema default) is not done for kstatus nor Argo CD', () => {
    const o = { kind: 'CertificateRotation', metadata: { name: 'r', generation: 1 }, spec: {}, status: { observedGeneration: -1 } };
    expect(kstatus(o).status).toBe('InProgress');
    expect(argoHealth(o).status).toBe('Progressing');
  });
});

// CertificateRotationPolicy: the statuses its own reconcile writes, through the same script and kstatus.
describe('CertificateRotationPolicy health (the same script)', () => {
  const windowClosed = { window: { days: [...WEEKDAYS], startTime: '22:00', endTime: '02:00', timeZone: 'UTC' } };
  it.each<[string, Parameters<typeof policy>[0], number | undefined, string, string]>([
    ['not due', { renewBefore: '720h' }, undefined, 'Healthy', 'Current'],
    ['waiting for its window', windowClosed, undefined, 'Healthy', 'Current'],
    ['suspended', { suspend: true }, undefined, 'Healthy', 'Current'],
    ['expired outside the window (Stalled)', windowClosed, -1, 'Degraded', 'Failed'],
  ])('%s: Argo CD %s', async (_name, spec, expiresInDays, argo, k) => {
    const c = new FakePolicyCluster();
    c.policies.set('nightly', policy(spec));
    if (expiresInDays !== undefined) c.inventories = [inventory('server-1', { etcd: expiresInDays })];
    await reconcilePolicy(c.deps(), 'nightly');
    // As JSON, the way Argo CD and kstatus receive it.
    const o = JSON.parse(JSON.stringify(c.policies.get('nightly')!));
    expect(argoHealth(o).status).toBe(argo);
    expect(kstatus(o).status).toBe(k);
    // A spec change the controller has not seen yet: in progress for both.
    const edited = { ...o, metadata: { ...o.metadata, generation: 2 } };
    expect(argoHealth(edited).status).toBe('Progressing');
    expect(kstatus(edited).status).toBe('InProgress');
  });
});
