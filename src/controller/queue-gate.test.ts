import { describe, expect, it } from '@jest/globals';
import type { CertificateRotation, CertificateRotationStatus } from '../api/certificaterotation.js';
import type { NodeRotation } from '../api/noderotation.js';
import { slotHolder, wantsToRun } from './queue-gate.js';

function rot(name: string, minute: number, status: Partial<CertificateRotationStatus> = {}, extra: Partial<CertificateRotation['spec']> = {}, generation = 1): CertificateRotation {
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'CertificateRotation',
    metadata: { name, generation, creationTimestamp: new Date(Date.UTC(2026, 8, 1, 10, minute)) },
    spec: { scope: 'All', mode: 'Apply', paused: false, strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback' }, ...extra },
    status: { observedGeneration: -1, ...status },
  };
}
const stalled = (reason: string) => [{ type: 'Stalled', status: 'True' as const, reason, message: 'm', lastTransitionTime: '2026-09-01T10:00:00Z' }];

describe('slotHolder', () => {
  it.each<[string, CertificateRotation, CertificateRotation[], string | undefined]>([
    ['alone: may run', rot('me', 5), [], undefined],
    ['an older one running: wait for it', rot('me', 1), [rot('old', 0, { runGeneration: 1, phase: 'Progressing' })], 'old'],
    ['a NEWER one running holds the slot too', rot('me', 1), [rot('new', 9, { runGeneration: 1, phase: 'Progressing' })], 'new'],
    ['a paused run holds the slot', rot('me', 5), [rot('p', 9, { runGeneration: 1, phase: 'Paused' })], 'p'],
    ['an older one not started yet goes first', rot('me', 5), [rot('old', 0)], 'old'],
    ['a newer one not started yet waits for me', rot('me', 5), [rot('new', 9)], undefined],
    ['same second: by name', rot('b', 5), [rot('a', 5)], 'a'],
    ['a finished older one does not hold', rot('me', 5), [rot('done', 0, { runGeneration: 1, phase: 'Succeeded', observedGeneration: 1 })], undefined],
    ['a failed older one does not hold', rot('me', 5), [rot('f', 0, { runGeneration: 1, phase: 'Failed', observedGeneration: 1 })], undefined],
    ['an older one stuck on a pre-run problem does not hold', rot('me', 5), [rot('bad', 0, { phase: 'Failed', observedGeneration: 1, conditions: stalled('ServiceNotInDistribution') })], undefined],
    ['an older Plan-mode one does not hold', rot('me', 5), [rot('plan', 0, {}, { mode: 'Plan' })], undefined],
    ['an older finished one whose spec changed wants to run again', rot('me', 5), [rot('again', 0, { runGeneration: 1, phase: 'Succeeded', observedGeneration: 1 }, {}, 2)], 'again'],
  ])('%s', (_name, me, others, holder) => {
    expect(slotHolder(me, [me, ...others])).toBe(holder);
  });

  describe('a node whose agent has not reported holds the slot after its run ended (nodeTimeout)', () => {
    const nr = (rotation: string, generation: number, node: string, phase?: string): NodeRotation =>
      ({
        metadata: { name: `${rotation}-g${generation}-${node}`, creationTimestamp: '2026-09-01T09:00:00Z' },
        spec: { rotation, generation, nodeName: node, runID: `uid-${rotation}-g${generation}` },
        ...(phase ? { status: { phase, ...(phase === 'Updating' ? { startedAt: '2026-09-01T09:01:02Z' } : {}) } } : {}),
      }) as unknown as NodeRotation;
    // The holder without the since-times and the release command (checked on their own below).
    const short = (h: string | undefined) => h?.replace(/ since [0-9TZ:-]+/g, '').replace(/ with no final report[\s\S]*\)$/, ')');
    const timedOut = rot('slow', 0, { runGeneration: 1, phase: 'Failed', observedGeneration: 1 });
    const of = (list: NodeRotation[]) => (name: string) => list.filter((n) => n.spec.rotation === name);

    it.each<[string, NodeRotation[], string | undefined]>([
      ['an Updating node of a failed run', [nr('slow', 1, 'a', 'Rotated'), nr('slow', 1, 'b', 'Updating')], 'slow (node b still in flight)'],
      ['a node never picked up (no status)', [nr('slow', 1, 'b')], 'slow (node b still in flight)'],
      ['a Pending node', [nr('slow', 1, 'b', 'Pending'), nr('slow', 1, 'c', 'Updating')], 'slow (node b, node c still in flight)'],
      ['every node reported', [nr('slow', 1, 'a', 'Rotated'), nr('slow', 1, 'b', 'RolledBack'), nr('slow', 1, 'c', 'Failed')], undefined],
    ])('%s', (_name, nodeRotations, holder) => {
      expect(short(slotHolder(rot('me', 5), [rot('me', 5), timedOut], of(nodeRotations)))).toBe(holder);
    });

    it('a node whose Node object is gone never reports: it holds nothing (issue: a deleted Node blocked every later rotation)', () => {
      const list = [nr('slow', 1, 'gone', 'Updating'), nr('slow', 1, 'b', 'Updating')];
      expect(short(slotHolder(rot('me', 5), [rot('me', 5), timedOut], of(list), (name) => name !== 'gone'))).toBe('slow (node b still in flight)');
      expect(slotHolder(rot('me', 5), [rot('me', 5), timedOut], of([list[0]!]), (name) => name !== 'gone')).toBeUndefined();
    });

    it('says since when each node is in flight, and the one command that releases the slot when an agent is gone for good', () => {
      const h = slotHolder(rot('me', 5), [rot('me', 5), timedOut], of([nr('slow', 1, 'b', 'Updating'), nr('slow', 1, 'c')]))!;
      expect(h).toContain('node b since 2026-09-01T09:01:02Z, node c since 2026-09-01T09:00:00Z still in flight with no final report from its agent');
      expect(h).toContain(`kubectl patch noderotation slow-g1-b --subresource=status --type=merge -p '{"status":{"phase":"Failed","runID":"uid-slow-g1","message":"released by hand: agent gone"}}' (and the same for the others)`);
    });

    it("me's own earlier run counts too (a spec change after a timeout)", () => {
      const me = rot('me', 5, { runGeneration: 1, phase: 'Failed', observedGeneration: 1 }, {}, 2);
      expect(short(slotHolder(me, [me], of([nr('me', 1, 'x', 'Updating')])))).toBe('me (node x still in flight)');
    });

    it('a running rotation is still named first', () => {
      const running = rot('run', 9, { runGeneration: 1, phase: 'Progressing' });
      expect(slotHolder(rot('me', 5), [rot('me', 5), timedOut, running], of([nr('slow', 1, 'b', 'Updating')]))).toBe('run');
    });
  });

  it('a rotation being deleted does not want to run', () => {
    const r = rot('d', 0);
    r.metadata.deletionTimestamp = new Date();
    expect(wantsToRun(r)).toBe(false);
  });
});
