import { describe, expect, it } from '@jest/globals';
import type { Condition } from '../api/common.js';
import type { NodePhase } from '../api/constants.js';
import {
  currentNodes,
  findCondition,
  mergeConditions,
  setCondition,
  summarizeRun,
  type RunNodeProgress,
  type RunState,
  type RunSummary,
} from './conditions.js';
import { planRotation, type Plan } from './plan.js';
import { rke2Node } from './testing.js';

const T0 = new Date('2026-01-01T00:00:00.123Z');
const T1 = new Date('2026-01-01T00:05:00Z');

describe('setCondition / mergeConditions', () => {
  const ready = (status: 'True' | 'False', reason = 'R', message = 'm') => ({ type: 'Ready', status, reason, message });

  it('adds a condition with the transition time (second precision) and observedGeneration', () => {
    expect(setCondition(undefined, ready('False'), { now: T0, observedGeneration: 3 })).toEqual([
      { type: 'Ready', status: 'False', reason: 'R', message: 'm', observedGeneration: 3, lastTransitionTime: '2026-01-01T00:00:00Z' },
    ]);
  });

  it('keeps lastTransitionTime when only reason or message change, but updates observedGeneration', () => {
    const first = setCondition(undefined, ready('False'), { now: T0, observedGeneration: 1 });
    const second = setCondition(first, ready('False', 'Other', 'new words'), { now: T1, observedGeneration: 2 });
    expect(second[0]).toMatchObject({ reason: 'Other', message: 'new words', observedGeneration: 2, lastTransitionTime: '2026-01-01T00:00:00Z' });
  });

  it('moves lastTransitionTime when the status changes', () => {
    const first = setCondition(undefined, ready('False'), { now: T0, observedGeneration: 1 });
    expect(setCondition(first, ready('True'), { now: T1, observedGeneration: 1 })[0]!.lastTransitionTime).toBe('2026-01-01T00:05:00Z');
  });

  it('keeps one entry per type and leaves other types alone', () => {
    let list: Condition[] = setCondition(undefined, ready('False'), { now: T0, observedGeneration: 1 });
    list = setCondition(list, { type: 'Stalled', status: 'False', reason: 'A', message: '' }, { now: T0, observedGeneration: 1 });
    list = setCondition(list, ready('True'), { now: T1, observedGeneration: 1 });
    expect(list.map((c) => [c.type, c.status])).toEqual([['Ready', 'True'], ['Stalled', 'False']]);
  });

  it('mergeConditions replaces the set, drops types not desired, keeps unchanged transition times', () => {
    const old = mergeConditions(undefined, [ready('False'), { type: 'ServersRotated', status: 'False', reason: 'P', message: '' }], { now: T0, observedGeneration: 1 });
    const merged = mergeConditions(old, [ready('False', 'X'), { type: 'Stalled', status: 'True', reason: 'S', message: 'why' }], { now: T1, observedGeneration: 2 });
    expect(merged.map((c) => c.type)).toEqual(['Ready', 'Stalled']);
    expect(findCondition(merged, 'Ready')!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    expect(findCondition(merged, 'Stalled')!.lastTransitionTime).toBe('2026-01-01T00:05:00Z');
  });
});

describe('currentNodes', () => {
  it.each<[string[], string | undefined]>([
    [[], undefined],
    [['a'], 'a'],
    [['a', 'b', 'c'], 'a,b,c'],
    [['a', 'b', 'c', 'd', 'e'], 'a,b,c +2'],
  ])('%j → %j', (names, text) => expect(currentNodes(names)).toBe(text));
});

// 2 servers (s1, s2) then 2 workers (w1, w2).
const planResult = planRotation({
  nodes: [rke2Node('s1', { etcd: true, cp: true }), rke2Node('s2', { etcd: true, cp: true }), rke2Node('w1'), rke2Node('w2')],
  distribution: 'rke2',
  scope: 'All',
  maxUnavailable: 2,
});
if (!planResult.ok) throw new Error(planResult.message);
const plan: Plan = planResult.plan;

function state(phases: Record<string, NodePhase | RunNodeProgress>, extra: Partial<RunState> = {}): RunState {
  const progress = new Map<string, RunNodeProgress>(
    Object.entries(phases).map(([n, p]) => [n, typeof p === 'string' ? { phase: p } : p]),
  );
  return { generation: 4, mode: 'Apply', paused: false, plan, progress, ...extra };
}

function statusOf(s: RunSummary, type: string): string {
  const c = s.conditions.find((x) => x.type === type);
  return c ? `${c.status}/${c.reason}` : 'absent';
}
function kstatus(s: RunSummary): string[] {
  return ['Ready', 'Reconciling', 'Stalled', 'ServersRotated', 'WorkersRestarted'].map((t) => statusOf(s, t));
}

describe('summarizeRun', () => {
  it.each<[string, RunState, string, string | undefined, string | undefined, string[]]>([
    ['before planning', { generation: 4, mode: 'Apply', paused: false, progress: new Map() }, 'Pending', undefined, undefined,
      ['False/Planning', 'True/Planning', 'False/AsExpected', 'absent', 'absent']],
    ['queued behind another rotation', state({}, { queuedBehind: 'other' }), 'Pending', undefined, undefined,
      ['False/Queued', 'True/Queued', 'False/AsExpected', 'absent', 'absent']],
    ['invalid for the detected distribution', state({}, { plan: undefined, problem: { reason: 'ServiceNotInDistribution', message: 'x' } }), 'Failed', undefined, undefined,
      ['False/ServiceNotInDistribution', 'False/ServiceNotInDistribution', 'True/ServiceNotInDistribution', 'absent', 'absent']],
    ['Plan mode', state({}, { mode: 'Plan' }), 'Planned', '0/4', undefined,
      ['True/Planned', 'False/AsExpected', 'False/AsExpected', 'absent', 'absent']],
    ['first server in flight', state({ s1: 'Updating' }), 'Progressing', '0/4', 's1',
      ['False/Progressing', 'True/Progressing', 'False/AsExpected', 'False/InProgress', 'False/Pending']],
    ['servers done, workers in flight', state({ s1: 'Rotated', s2: 'Rotated', w1: 'Updating', w2: 'Updating' }), 'Progressing', '2/4', 'w1,w2',
      ['False/Progressing', 'True/Progressing', 'False/AsExpected', 'True/Rotated', 'False/InProgress']],
    ['all rotated (one skipped)', state({ s1: 'Rotated', s2: 'Rotated', w1: 'Rotated', w2: 'Skipped' }), 'Succeeded', '4/4', undefined,
      ['True/Succeeded', 'False/AsExpected', 'False/AsExpected', 'True/Rotated', 'True/Restarted']],
    ['paused between nodes', state({ s1: 'Rotated' }, { paused: true }), 'Paused', '1/4', undefined,
      ['False/Paused', 'True/Paused', 'False/AsExpected', 'False/InProgress', 'False/Pending']],
    ['server rolled back', state({ s1: 'Rotated', s2: { phase: 'RolledBack', step: 'Verifying', message: 'apiserver did not serve the new serial' } }), 'Failed', '1/4', undefined,
      ['False/NodeRolledBack', 'False/NodeRolledBack', 'True/NodeRolledBack', 'False/Failed', 'False/Pending']],
    ['worker failed while another worker is in flight', state({ s1: 'Rotated', s2: 'Rotated', w1: 'Failed', w2: 'Updating' }), 'Progressing', '2/4', 'w2',
      ['False/NodeFailed', 'True/FinishingInFlight', 'True/NodeFailed', 'True/Rotated', 'False/Failed']],
    ['timed out', state({ s1: { phase: 'Failed', timedOut: true, step: 'Restarting' } }), 'Failed', '0/4', undefined,
      ['False/NodeTimeout', 'False/NodeTimeout', 'True/NodeTimeout', 'False/Failed', 'False/Pending']],
  ])('%s', (_name, s, phase, progress, current, conditions) => {
    const summary = summarizeRun(s);
    expect(summary.phase).toBe(phase);
    expect(summary.progress).toBe(progress);
    expect(summary.current).toBe(current);
    expect(kstatus(summary)).toEqual(conditions);
    expect(summary.observedGeneration).toBe(4);
  });

  it('a failure message names the node, its role, the step and the cause', () => {
    const s = summarizeRun(state({ s1: 'Rotated', s2: { phase: 'RolledBack', step: 'Verifying', message: 'apiserver did not serve the new serial' } }));
    expect(s.conditions.find((c) => c.type === 'Stalled')!.message).toBe(
      'node s2 (etcd,controlplane) failed and was rolled back at step Verifying: apiserver did not serve the new serial; 1/4 node(s) rotated, the run is stopped',
    );
  });

  it('the queued message names the rotation it waits for', () => {
    expect(summarizeRun(state({}, { queuedBehind: 'rotate-all' })).conditions[0]!.message).toMatch(/CertificateRotation rotate-all/);
  });

  it('never says Ready=True and Stalled=True together, and has one condition per type', () => {
    const cases = [state({}), state({ s1: 'Failed' }), state({ s1: 'Rotated', s2: 'Rotated', w1: 'Rotated', w2: 'Rotated' })];
    for (const c of cases) {
      const s = summarizeRun(c);
      expect(!(statusOf(s, 'Ready').startsWith('True') && statusOf(s, 'Stalled').startsWith('True'))).toBe(true);
      expect(new Set(s.conditions.map((x) => x.type)).size).toBe(s.conditions.length);
    }
  });
});
