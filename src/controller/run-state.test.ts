import { describe, expect, it } from '@jest/globals';
import type { CertificateRotation } from '../api/certificaterotation.js';
import { planFromStatus, runFingerprint, settled } from './run-state.js';

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
