import { describe, expect, test } from '@jest/globals';
import { WEEKDAYS } from '../../api/certificaterotationpolicy.js';
import { LABELS, PAUSED_BY_POLICY_ANNOTATION } from '../../api/constants.js';
import { FakePolicyCluster, inventory, NOW, policy, rotation } from './testing.js';
import { MAX_REQUEUE_MS, reconcilePolicy, rotationName } from './reconcile-policy.js';

function cluster(spec: Parameters<typeof policy>[0] = {}): FakePolicyCluster {
  const c = new FakePolicyCluster();
  c.policies.set('nightly', policy(spec));
  return c;
}

describe('reconcilePolicy', () => {
  test('due: creates one rotation from the template, owned by the policy; the next pass creates none while it runs', async () => {
    const c = cluster({ template: { scope: 'Service', service: 'api-server', strategy: { maxUnavailable: 2, nodeTimeout: '15m', onFailure: 'Halt' } } });
    await reconcilePolicy(c.deps(), 'nightly');
    expect(c.created).toHaveLength(1);
    const r = c.created[0]!;
    expect(r.metadata.name).toBe('nightly-20270106-030000');
    expect(r.metadata.labels).toEqual({ [LABELS.policy]: 'nightly' });
    expect(r.metadata.ownerReferences).toEqual([{ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotationPolicy', name: 'nightly', uid: 'uid-1', controller: true }]);
    expect(r.spec).toEqual({ scope: 'Service', service: 'api-server', mode: 'Apply', strategy: { maxUnavailable: 2, nodeTimeout: '15m', onFailure: 'Halt' } });
    const status = c.policies.get('nightly')!.status!;
    expect(status.lastRotation).toEqual({ name: 'nightly-20270106-030000', createdAt: NOW.toISOString() });
    expect(status.nextExpiry).toMatchObject({ service: 'api-server', node: 'server-1' });
    expect(status.conditions?.find((x) => x.type === 'Ready')).toMatchObject({ status: 'True', reason: 'RotationCreated' });
    expect(c.events[0]).toMatch(/^Normal RotationCreated: created CertificateRotation nightly-20270106-030000: api-server on server-1/);
    // The API server has it; the cache does not yet: the fresh list stops a second one.
    c.notYetCached = [rotation('nightly-20270106-030000', undefined, { policy: 'nightly', generation: '1' })];
    c.now = new Date(NOW.getTime() + 1000);
    await reconcilePolicy(c.deps(), 'nightly');
    expect(c.created).toHaveLength(1);
    // And once cached, it blocks by itself.
    c.rotations = c.notYetCached;
    c.notYetCached = [];
    await reconcilePolicy(c.deps(), 'nightly');
    expect(c.created).toHaveLength(1);
    expect(c.policies.get('nightly')!.status!.conditions?.find((x) => x.type === 'Ready')).toMatchObject({ reason: 'RotationRunning' });
  });

  test('status is written only when it changed', async () => {
    const c = cluster({ renewBefore: '720h' });
    const first = await reconcilePolicy(c.deps(), 'nightly');
    expect(c.statusWrites).toBe(1);
    await reconcilePolicy(c.deps(), 'nightly');
    expect(c.statusWrites).toBe(1);
    expect(c.created).toEqual([]);
    expect(c.policies.get('nightly')!.status).toMatchObject({ nextRotation: '2027-02-25T03:00:00.000Z', observedGeneration: 1 });
    expect(first).toEqual({ requeueAfterMs: MAX_REQUEUE_MS });
  });

  describe('the window steers a running rotation of the policy', () => {
    const win = { window: { days: [...WEEKDAYS], startTime: '22:00', endTime: '02:00', timeZone: 'UTC' } };
    test('closed: pauses it (marked as the policy’s doing), says so, requeues for the opening', async () => {
      const c = cluster(win);
      c.rotations = [rotation('nightly-1', 'Progressing', { policy: 'nightly', generation: '1' })];
      const result = await reconcilePolicy(c.deps(), 'nightly');
      expect(c.patches).toEqual([['nightly-1', { metadata: { annotations: { [PAUSED_BY_POLICY_ANNOTATION]: 'true' } }, spec: { paused: true } }]]);
      expect(c.events[0]).toMatch(/^Normal WindowClosed: paused CertificateRotation nightly-1: .* window opening at 2027-01-06T22:00:00.000Z/);
      expect(result).toEqual({ requeueAfterMs: 19 * 3_600_000 > MAX_REQUEUE_MS ? MAX_REQUEUE_MS : 19 * 3_600_000 });
    });
    test('open: resumes what the policy paused, not what a person paused', async () => {
      const c = cluster(win);
      c.now = new Date('2027-01-06T23:00:00Z');
      const ours = rotation('nightly-1', 'Paused', { policy: 'nightly', generation: '1' });
      ours.spec.paused = true;
      ours.metadata.annotations![PAUSED_BY_POLICY_ANNOTATION] = 'true';
      c.rotations = [ours];
      await reconcilePolicy(c.deps(), 'nightly');
      expect(c.patches).toEqual([['nightly-1', { metadata: { annotations: { [PAUSED_BY_POLICY_ANNOTATION]: null } }, spec: { paused: false } }]]);
      const theirs = rotation('nightly-1', 'Paused', { policy: 'nightly', generation: '1' });
      theirs.spec.paused = true;
      const d = cluster(win);
      d.now = c.now;
      d.rotations = [theirs];
      await reconcilePolicy(d.deps(), 'nightly');
      expect(d.patches).toEqual([]);
    });
    test('the window removed from the spec: what the policy paused is resumed; an unknown time zone: nothing is touched', async () => {
      const paused = () => {
        const r = rotation('nightly-1', 'Paused', { policy: 'nightly', generation: '1' });
        r.spec.paused = true;
        r.metadata.annotations![PAUSED_BY_POLICY_ANNOTATION] = 'true';
        return r;
      };
      const c = cluster();
      c.rotations = [paused()];
      await reconcilePolicy(c.deps(), 'nightly');
      expect(c.patches).toEqual([['nightly-1', { metadata: { annotations: { [PAUSED_BY_POLICY_ANNOTATION]: null } }, spec: { paused: false } }]]);
      expect(c.events[0]).toBe('Normal WindowOpened: resumed CertificateRotation nightly-1: the policy has no window any more');
      const d = cluster({ window: { ...win.window, timeZone: 'Mars/Olympus_Mons' } });
      d.rotations = [paused()];
      await reconcilePolicy(d.deps(), 'nightly');
      expect(d.patches).toEqual([]);
    });
    test('suspended: the policy neither pauses nor resumes', async () => {
      const c = cluster({ ...win, suspend: true });
      c.rotations = [rotation('nightly-1', 'Progressing', { policy: 'nightly', generation: '1' })];
      await reconcilePolicy(c.deps(), 'nightly');
      expect(c.patches).toEqual([]);
    });
  });

  test('history: finished rotations beyond historyLimit are deleted, oldest first; unfinished and others’ never', async () => {
    const c = cluster({ historyLimit: 2, renewBefore: '720h' });
    const at = (days: number) => new Date(NOW.getTime() - days * 86_400_000) as unknown as Date;
    c.rotations = [5, 4, 3, 2].map((d) => {
      const r = rotation(`nightly-${d}`, 'Succeeded', { policy: 'nightly', generation: '1' });
      r.metadata.creationTimestamp = at(d);
      return r;
    });
    c.rotations.push(rotation('by-hand', 'Succeeded'));
    await reconcilePolicy(c.deps(), 'nightly');
    expect(c.deleted).toEqual(['nightly-5', 'nightly-4']);
  });

  test('a stalled policy says so once as a Warning event, and to the metric until it is not (or is gone)', async () => {
    const c = cluster({ window: { days: [...WEEKDAYS], startTime: '22:00', endTime: '02:00', timeZone: 'UTC' } });
    c.inventories = [inventory('server-1', { etcd: -1 })];
    const said: [string, string | undefined][] = [];
    const deps = () => ({ ...c.deps(), stalled: (p: string, r: string | undefined) => void said.push([p, r]) });
    await reconcilePolicy(deps(), 'nightly');
    await reconcilePolicy(deps(), 'nightly');
    expect(said).toEqual([['nightly', 'ExpiredOutsideWindow'], ['nightly', 'ExpiredOutsideWindow']]);
    expect(c.events.filter((e) => e.startsWith('Warning'))).toEqual([expect.stringMatching(/^Warning ExpiredOutsideWindow: etcd on server-1 .* EXPIRED/)]);
    expect(c.policies.get('nightly')!.status!.conditions?.find((x) => x.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'ExpiredOutsideWindow' });
    // Renewed (by hand, say): not stalled; then the policy deleted: no series either.
    c.inventories = [inventory('server-1', { etcd: 300 })];
    await reconcilePolicy(deps(), 'nightly');
    c.policies.clear();
    await reconcilePolicy(deps(), 'nightly');
    expect(said.slice(2)).toEqual([['nightly', undefined], ['nightly', undefined]]);
  });

  test('rotationName fits any policy name', () => {
    expect(rotationName('a'.repeat(253), NOW)).toHaveLength(253);
    expect(rotationName('nightly', NOW)).toBe('nightly-20270106-030000');
  });
});
