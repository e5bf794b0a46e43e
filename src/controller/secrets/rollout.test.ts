import { describe, expect, test } from '@jest/globals';
import { rollAnnotations, rolloutOf, RESTARTED_AT_ANNOTATION, ROTATION_ANNOTATION, SERVING_SERIAL_ANNOTATION, type WorkloadState } from './rollout.js';

const meta = { namespace: 'hooks', name: 'hook', generation: 3 };
const deployment = (status: WorkloadState['status'], replicas = 2): WorkloadState => ({ kind: 'Deployment', metadata: meta, spec: { replicas }, status: { observedGeneration: 3, ...status } });
const daemonSet = (status: WorkloadState['status'], strategy = 'RollingUpdate'): WorkloadState => ({ kind: 'DaemonSet', metadata: meta, spec: { updateStrategy: { type: strategy } }, status: { observedGeneration: 3, ...status } });
const statefulSet = (status: WorkloadState['status'], partition?: number, strategy = 'RollingUpdate'): WorkloadState => ({
  kind: 'StatefulSet',
  metadata: meta,
  spec: { replicas: 3, updateStrategy: { type: strategy, ...(partition !== undefined ? { rollingUpdate: { partition } } : {}) } },
  status: { observedGeneration: 3, ...status },
});

describe('rolloutOf', () => {
  const cases: [string, WorkloadState, 'Done' | 'Waiting' | 'Failed', RegExp][] = [
    ['Deployment: the patched generation not observed yet', { ...deployment({ updatedReplicas: 2, replicas: 2, availableReplicas: 2 }), status: { observedGeneration: 2, updatedReplicas: 2, replicas: 2, availableReplicas: 2 } }, 'Waiting', /Deployment hooks\/hook: its controller has not observed/],
    ['Deployment: one of two updated', deployment({ updatedReplicas: 1, replicas: 3, availableReplicas: 2 }), 'Waiting', /1 of 2 new replicas updated/],
    ['Deployment: an old replica still terminating', deployment({ updatedReplicas: 2, replicas: 3, availableReplicas: 2 }), 'Waiting', /1 old replicas pending termination/],
    ['Deployment: updated but not yet available', deployment({ updatedReplicas: 2, replicas: 2, availableReplicas: 1 }), 'Waiting', /1 of 2 updated replicas available/],
    ['Deployment: done', deployment({ updatedReplicas: 2, replicas: 2, availableReplicas: 2 }), 'Done', /rolled out \(2 replicas/],
    ['Deployment: replicas unset means one', { ...deployment({ updatedReplicas: 1, replicas: 1, availableReplicas: 1 }), spec: {} }, 'Done', /rolled out \(1 replicas/],
    ['Deployment: replicas unset, none updated', { ...deployment({ updatedReplicas: 0, replicas: 1, availableReplicas: 1 }), spec: {} }, 'Waiting', /0 of 1 new replicas updated/],
    [
      'Deployment: past its progress deadline',
      deployment({ updatedReplicas: 1, replicas: 3, availableReplicas: 2, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "hook-7d" has timed out progressing.' }] }),
      'Failed',
      /exceeded its progress deadline \(ReplicaSet "hook-7d" has timed out progressing\.\)/,
    ],
    ['DaemonSet: OnDelete never replaces a pod', daemonSet({ desiredNumberScheduled: 3, updatedNumberScheduled: 0, numberAvailable: 3 }, 'OnDelete'), 'Failed', /updateStrategy is OnDelete/],
    ['DaemonSet: two of three scheduled', daemonSet({ desiredNumberScheduled: 3, updatedNumberScheduled: 2, numberAvailable: 3 }), 'Waiting', /2 of 3 updated pods scheduled/],
    ['DaemonSet: scheduled, not all available', daemonSet({ desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 2 }), 'Waiting', /2 of 3 updated pods available/],
    ['DaemonSet: done', daemonSet({ desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 3 }), 'Done', /rolled out \(3 pods/],
    ['StatefulSet: a partition keeps old pods', statefulSet({ readyReplicas: 3, updateRevision: 'b', currentRevision: 'a' }, 1), 'Failed', /partition is 1/],
    ['StatefulSet: OnDelete', statefulSet({ readyReplicas: 3 }, undefined, 'OnDelete'), 'Failed', /updateStrategy is OnDelete/],
    ['StatefulSet: a pod not ready', statefulSet({ readyReplicas: 2, updatedReplicas: 1, updateRevision: 'b', currentRevision: 'a' }), 'Waiting', /2 of 3 pods ready/],
    ['StatefulSet: ready, revision not rolled through', statefulSet({ readyReplicas: 3, updatedReplicas: 2, updateRevision: 'b', currentRevision: 'a' }), 'Waiting', /2 of 3 pods at the new revision/],
    ['StatefulSet: done', statefulSet({ readyReplicas: 3, updatedReplicas: 3, updateRevision: 'b', currentRevision: 'b' }, 0), 'Done', /revision b/],
  ];
  test.each(cases)('%s', (_name, workload, state, message) => {
    const r = rolloutOf(workload);
    expect(r.state).toBe(state);
    expect(r.message).toMatch(message);
  });
});

test('rollAnnotations: the time, the rotation and the serial to be served', () => {
  const now = new Date('2026-12-04T10:00:00Z');
  expect(rollAnnotations('renew-hooks/g3', '6956014809AE071C', now)).toEqual({
    [RESTARTED_AT_ANNOTATION]: '2026-12-04T10:00:00.000Z',
    [ROTATION_ANNOTATION]: 'renew-hooks/g3',
    [SERVING_SERIAL_ANNOTATION]: '6956014809AE071C',
  });
  expect([RESTARTED_AT_ANNOTATION, ROTATION_ANNOTATION, SERVING_SERIAL_ANNOTATION]).toEqual(['certrotator.io/restartedAt', 'certrotator.io/rotation', 'certrotator.io/serving-serial']);
});
