// The controller's read-your-writes cache (RecentWrites): the one-rotation
// gate and every hand-off read through it, so what it prefers and for how long
// is checked row by row, with an injected clock.
import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { RecentWrites } from './kube-adapter.js';

const obj = (name: string, resourceVersion: string | undefined, mark = ''): KubernetesObject => ({
  metadata: { name, ...(resourceVersion !== undefined ? { resourceVersion } : {}), annotations: { mark }, managedFields: [{ manager: 'x' }] },
});

function writes(): { w: RecentWrites<KubernetesObject>; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  return { w: new RecentWrites<KubernetesObject>(() => clock.t), clock };
}

describe('RecentWrites.pick', () => {
  it.each<[string, string | undefined, string | undefined, string]>([
    ['our write is newer than the cache: ours', '12', '10', 'mine'],
    ['the cache caught up exactly: the cache', '12', '12', 'cached'],
    ['the cache is newer (someone wrote after us): the cache', '12', '15', 'cached'],
    ['resourceVersions that are not numbers: the cache (the fence still protects the write)', 'abc', '10', 'cached'],
    ['big resourceVersions compare as numbers, not strings', '100000000000000000009', '99999999999999999999', 'mine'],
  ])('%s', (_what, mineRv, cachedRv, expected) => {
    const { w } = writes();
    w.remember(obj('r', mineRv, 'mine'));
    expect(w.pick('r', obj('r', cachedRv, 'cached'))?.metadata?.annotations?.mark).toBe(expected);
  });

  it('once the cache has caught up, it is trusted from then on (the write is dropped)', () => {
    const { w } = writes();
    w.remember(obj('r', '12', 'mine'));
    expect(w.pick('r', obj('r', '12', 'cached'))?.metadata?.annotations?.mark).toBe('cached');
    // An older cached object later (a relist served from a lagging cache) is not replaced by the forgotten write.
    expect(w.pick('r', obj('r', '11', 'older'))?.metadata?.annotations?.mark).toBe('older');
  });

  it('an object the cache does not show yet stands in for 5 s, then is dropped', () => {
    const { w, clock } = writes();
    w.remember(obj('new', '3', 'mine'));
    clock.t += 4_999;
    expect(w.pick('new', undefined)?.metadata?.annotations?.mark).toBe('mine');
    clock.t += 2;
    expect(w.pick('new', undefined)).toBeUndefined();
    expect(w.pick('new', undefined)).toBeUndefined();
  });

  it('keeps written objects without managedFields, as the informer keeps them', () => {
    const { w } = writes();
    w.remember(obj('r', '12'));
    expect(w.pick('r', undefined)?.metadata?.managedFields).toBeUndefined();
  });

  it('forget drops our write at once (a deleted object is not resurrected)', () => {
    const { w } = writes();
    w.remember(obj('r', '12', 'mine'));
    w.forget('r');
    expect(w.pick('r', undefined)).toBeUndefined();
  });
});

describe('RecentWrites.unseen', () => {
  it('lists written objects the cache lacks, drops those it now has, and those past the grace period', () => {
    const { w, clock } = writes();
    w.remember(obj('a', '1'));
    clock.t += 3_000;
    w.remember(obj('b', '2'));
    w.remember(obj('c', '3'));
    const inCache = new Set(['c']);
    expect(w.unseen((n) => inCache.has(n)).map((o) => o.metadata!.name).sort()).toEqual(['a', 'b']);
    clock.t += 2_500; // a is 5.5 s old, b 2.5 s
    expect(w.unseen(() => false).map((o) => o.metadata!.name)).toEqual(['b']);
    // c was seen in the cache once: dropped for good, even if the cache loses it again.
    expect(w.unseen(() => false).map((o) => o.metadata!.name)).toEqual(['b']);
  });
});
