import { describe, expect, it } from '@jest/globals';
import type { NodeRotation, NodeRotationStatus } from '../api/noderotation.js';
import { inFlightFor } from './finalizer.js';

const NOW = new Date('2026-09-01T10:00:00Z');
function nr(created: string, status?: Partial<NodeRotationStatus>, action: NodeRotation['spec']['action'] = 'Rotate'): NodeRotation {
  return {
    apiVersion: 'certrotator.io/v1alpha1', kind: 'NodeRotation',
    metadata: { name: 'x', creationTimestamp: new Date(created) },
    spec: { rotation: 'r', generation: 1, runID: 'u-g1', nodeName: 'n', role: 'worker', action, distribution: 'rke2', scope: 'All', services: [], restart: true, timeout: '10m', onFailure: 'Rollback' },
    ...(status ? { status: { phase: 'Pending', ...status } } : {}),
  };
}

describe('inFlightFor (how long deletion still waits for a node)', () => {
  it.each<[string, NodeRotation, number]>([
    ['rotated: not in flight', nr('2026-09-01T09:59:00Z', { phase: 'Rotated' }), 0],
    ['rolled back: not in flight', nr('2026-09-01T09:59:00Z', { phase: 'RolledBack' }), 0],
    ['failed: not in flight', nr('2026-09-01T09:59:00Z', { phase: 'Failed' }), 0],
    ['updating since 1 min of 10: 9 min left', nr('2026-09-01T09:50:00Z', { phase: 'Updating', startedAt: '2026-09-01T09:59:00Z' }), 9 * 60_000],
    ['never picked up, created 4 min ago: 6 min left', nr('2026-09-01T09:56:00Z'), 6 * 60_000],
    ['never picked up for longer than the timeout: given up', nr('2026-09-01T09:40:00Z', { phase: 'Pending' }), 0],
    ['a read-only Check, unanswered: nothing to wait for', nr('2026-09-01T09:59:00Z', undefined, 'Check'), 0],
    ['a read-only Check, answered: nothing to wait for', nr('2026-09-01T09:59:00Z', { phase: 'Checked' }, 'Check'), 0],
  ])('%s', (_n, obj, ms) => expect(inFlightFor(obj, NOW, 10 * 60_000)).toBe(ms));
});
