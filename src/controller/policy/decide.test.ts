import { describe, expect, test } from '@jest/globals';
import { WEEKDAYS, type CertificateRotationPolicy } from '../../api/certificaterotationpolicy.js';
import { LABELS } from '../../api/constants.js';
import { decide, earliestInScope, expiresFirst, inScope, type PolicyInput } from './decide.js';
import { inventory, NOW, policy, rotatedBy, rotation } from './testing.js';

const labels = new Map<string, Record<string, string>>([
  ['server-1', { 'node-role.kubernetes.io/control-plane': 'true' }],
  ['worker-1', { pool: 'a' }],
]);

function input(p: CertificateRotationPolicy, o: Partial<PolicyInput> = {}): PolicyInput {
  const rotations = o.rotations ?? [];
  const owned = rotations.filter((r) => r.metadata.labels?.[LABELS.policy] === p.metadata.name);
  return {
    policy: p,
    now: NOW,
    inventories: [inventory('server-1', { etcd: 200, 'api-server': 80 }), inventory('worker-1', { kubelet: 300 })],
    nodeLabels: labels,
    rotations,
    owned,
    lastRotated: rotatedBy(owned.at(-1)),
    ...o,
  };
}

const window = (startTime: string, endTime: string, days = [...WEEKDAYS]) => ({ window: { days, startTime, endTime, timeZone: 'UTC' } });

describe('decide: whether and why a policy creates a rotation now', () => {
  test.each<[string, PolicyInput, { create: boolean; reason: string; stalled?: boolean; message?: RegExp; retryAt?: string }]>([
    ['due, no window: create', input(policy()), { create: true, reason: 'RotationCreated', message: /api-server on server-1 .* expires at 2027-03-27T03:00:00.000Z, within renewBefore 2160h; no window/ }],
    ['not due: wait until the due time', input(policy({ renewBefore: '720h' })), { create: false, reason: 'NotDue', retryAt: '2027-02-25T03:00:00.000Z', message: /due for rotation at 2027-02-25T03:00:00.000Z/ }],
    ['suspended: nothing, whatever is due', input(policy({ suspend: true })), { create: false, reason: 'Suspended' }],
    ['another rotation runs (not the policy’s): wait', input(policy(), { rotations: [rotation('by-hand', 'Progressing')] }), { create: false, reason: 'RotationRunning', message: /by-hand has not finished/ }],
    ['a rotation the controller has not seen yet counts as running', input(policy(), { rotations: [rotation('new', undefined)] }), { create: false, reason: 'RotationRunning' }],
    ['finished rotations do not block', input(policy(), { rotations: [rotation('old', 'Succeeded')] }), { create: true, reason: 'RotationCreated' }],
    ['no inventory yet: wait', input(policy(), { inventories: [] }), { create: false, reason: 'WaitingForInventory' }],
    ['inventories of nodes that left the cluster do not count', input(policy(), { inventories: [inventory('gone-1', { etcd: 1 })] }), { create: false, reason: 'WaitingForInventory' }],
    ['scope Service: only that service’s certificates', input(policy({ template: { scope: 'Service', service: 'kubelet', strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback' } } })), { create: false, reason: 'NotDue', message: /kubelet on worker-1/ }],
    ['nodeSelector: only the selected nodes’ certificates', input(policy({ template: { scope: 'All', strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback', nodeSelector: { matchLabels: { pool: 'a' } } } } })), { create: false, reason: 'NotDue', message: /kubelet on worker-1/ }],
    ['inside the window, after the jitter: create', input(policy(window('02:00', '06:00'))), { create: true, reason: 'RotationCreated', message: /the window is open until 2027-01-06T06:00:00.000Z/ }],
    ['inside the window, before this policy’s jitter: wait for it', input(policy(window('02:59', '06:00'))), { create: false, reason: 'WaitingForWindow', message: /\(jitter\)/ }],
    ['outside the window: wait for the next one', input(policy(window('22:00', '02:00'))), { create: false, reason: 'WaitingForWindow', message: /next window opens at 2027-01-06T22:00:00.000Z/ }],
    ['expired, outside the window: Stalled, says when the window opens and how to rotate at once', input(policy(window('22:00', '02:00')), { inventories: [inventory('server-1', { etcd: -2 })] }), { create: false, reason: 'ExpiredOutsideWindow', stalled: true, message: /etcd on server-1 .* EXPIRED at 2027-01-04T03:00:00.000Z; the next window opens at 2027-01-06T22:00:00.000Z. Set spec.renewExpiredOutsideWindow: true/ }],
    ['expired, outside the window, renewExpiredOutsideWindow: create at once', input(policy({ ...window('22:00', '02:00'), renewExpiredOutsideWindow: true }), { inventories: [inventory('server-1', { etcd: -2 })] }), { create: true, reason: 'ExpiredOutsideWindow' }],
    ['an unknown time zone: Stalled, names it', input(policy({ window: { days: [...WEEKDAYS], startTime: '02:00', endTime: '04:00', timeZone: 'Mars/Olympus_Mons' } })), { create: false, reason: 'InvalidTimeZone', stalled: true, message: /"Mars\/Olympus_Mons"/ }],
    ['its last rotation failed (this generation): Stalled, never again by itself', input(policy(), { rotations: [rotation('nightly-1', 'Failed', { policy: 'nightly', generation: '1' })] }), { create: false, reason: 'LastRotationFailed', stalled: true, message: /nightly-1 failed: node server-1 rolled back: verify failed. Fix the cause/ }],
    ['its last rotation failed for an earlier generation: the edit is the go-ahead', input(policy({}, 2), { rotations: [rotation('nightly-1', 'Failed', { policy: 'nightly', generation: '1' })] }), { create: true, reason: 'RotationCreated' }],
    [
      'after its rotation succeeded, a rotated node’s inventory from before: wait for a fresh scan',
      input(policy(), { rotations: [rotation('nightly-1', 'Succeeded', { policy: 'nightly', generation: '1', completedAt: new Date(NOW.getTime() - 60_000).toISOString(), rotated: ['server-1'] })] }),
      { create: false, reason: 'WaitingForInventory', message: /inventories of server-1, scanned before nightly-1 rotated them/ },
    ],
    [
      'due although its last rotation finished after it became due (renewBefore longer than the leaves live): Stalled, never a loop',
      input(policy({ renewBefore: '87600h' }), { rotations: [rotation('nightly-1', 'Succeeded', { policy: 'nightly', generation: '1', completedAt: new Date(NOW.getTime() - 7_200_000).toISOString(), rotated: ['server-1'] })] }),
      { create: false, reason: 'StillDueAfterRotation', stalled: true, message: /within renewBefore 87600h even after nightly-1 finished at .*: another rotation would not change that/ },
    ],
    [
      'due again a year after its last rotation: rotates',
      input(policy(), { rotations: [rotation('nightly-1', 'Succeeded', { policy: 'nightly', generation: '1', completedAt: new Date(NOW.getTime() - 300 * 86_400_000).toISOString(), rotated: ['server-1'] })] }),
      { create: true, reason: 'RotationCreated' },
    ],
  ])('%s', (_name, i, expected) => {
    const v = decide(i);
    expect(v.create).toBe(expected.create);
    expect(v.reason).toBe(expected.reason);
    if (!v.create) expect(v.stalled ?? false).toBe(expected.stalled ?? false);
    if (expected.message) expect(v.message).toMatch(expected.message);
    if (expected.retryAt) expect(!v.create && v.retryAt?.toISOString()).toBe(expected.retryAt);
  });
});

test('inScope: each (node, service) in scope with its node and file; earliestInScope: the one that expires first', () => {
  const i = input(policy());
  expect([...inScope(i)].sort(expiresFirst).map((e) => `${e.service}@${e.node}`)).toEqual(['api-server@server-1', 'etcd@server-1', 'kubelet@worker-1']);
  expect(earliestInScope(i)).toEqual([...inScope(i)].sort(expiresFirst)[0]);
});

test.each([
  ['the earlier notAfter', [['b', { etcd: 20 }], ['a', { etcd: 30 }]], 'etcd@b'],
  ['a tie: the node first by name', [['b', { etcd: 20 }], ['a', { kubelet: 20 }]], 'kubelet@a'],
  ['a tie on one node: the service first by name', [['a', { kubelet: 20, etcd: 20 }]], 'etcd@a'],
] as const)('earliestInScope: %s, whatever the order of the cache', (_name, entries, expected) => {
  const inventories = entries.map(([node, services]) => inventory(node, services as Record<string, number>));
  for (const order of [inventories, [...inventories].reverse()]) {
    const e = earliestInScope({ ...input(policy()), inventories: order, nodeLabels: new Map([['a', {}], ['b', {}]]) });
    expect(`${e?.service}@${e?.node}`).toBe(expected);
  }
});
