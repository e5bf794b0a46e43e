import { describe, expect, it } from '@jest/globals';
import type { CertificateInventory } from '../api/certificateinventory.js';
import { ConflictError, type CustomObject } from '../kube/client.js';
import type { InventoryScan } from './inventory.js';
import { InventoryPublisher, inventoryStatus } from './inventory-publisher.js';

const S = '/var/lib/rancher/rke2/server/tls';
const scan = (over: Partial<InventoryScan> = {}): InventoryScan => ({
  at: '2026-12-03T00:00:00.000Z',
  roles: ['worker', 'etcd', 'controlplane'],
  items: [
    { service: 'api-server', path: `${S}/serving-kube-apiserver.crt`, notAfter: '2027-06-01T00:00:00.000Z' },
    { service: 'api-server', endpoint: '10.0.0.1:6443', notAfter: '2027-01-10T00:00:00.000Z' },
    { service: 'etcd', path: `${S}/etcd/server-client.crt`, notAfter: '2027-03-01T00:00:00.000Z' },
    { service: 'admin', path: `${S}/client-admin.crt`, notAfter: '2026-11-01T00:00:00.000Z' },
  ],
  unreadable: [],
  files: 3,
  expired: 1,
  errors: 0,
  endpoints: 1,
  stale: [],
  ...over,
});

describe('inventoryStatus', () => {
  it('the earliest per service (file or served), ordered by expiry; the node’s earliest with days left', () => {
    const st = inventoryStatus(scan(), 'server-1', 'rke2', '2026-12-03T00:00:01.000Z');
    expect(st.services).toEqual([
      { name: 'admin', notAfter: '2026-11-01T00:00:00.000Z', path: `${S}/client-admin.crt` },
      { name: 'api-server', notAfter: '2027-01-10T00:00:00.000Z', endpoint: '10.0.0.1:6443' },
      { name: 'etcd', notAfter: '2027-03-01T00:00:00.000Z', path: `${S}/etcd/server-client.crt` },
    ]);
    expect(st.earliest).toEqual({ service: 'admin', notAfter: '2026-11-01T00:00:00.000Z', daysLeft: -32, path: `${S}/client-admin.crt` });
    expect(st).toMatchObject({ nodeName: 'server-1', distribution: 'rke2', roles: 'etcd,controlplane,worker', files: 3, endpoints: 1, expired: 1, errors: 0 });
  });

  it.each([
    ['nothing read: no earliest, empty lists', scan({ items: [], files: 0, expired: 0, endpoints: 0 }), { services: [], staleEndpoints: [], unreadable: [] }],
    ['a reason longer than the schema holds is cut, not refused', scan({ unreadable: [`/x: ${'e'.repeat(5000)}`] }), { unreadable: [expect.stringMatching(/^\/x: e{1020}$/)] }],
    ['16 listed at most, the rest counted', scan({ stale: Array.from({ length: 20 }, (_, i) => `kubelet 10.0.0.${i + 10}:10250`) }), { staleEndpoints: expect.arrayContaining(['and 5 more']) }],
  ])('%s', (_name, input, want) => {
    const st = inventoryStatus(input, 'n', 'rke2', input.at);
    expect(st).toMatchObject(want);
    expect(st.staleEndpoints.length).toBeLessThanOrEqual(16);
    if (input.items.length === 0) expect(st.earliest).toBeUndefined();
  });
});

type Obj = CertificateInventory & CustomObject;

function sortedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortedKeys((v as Record<string, unknown>)[k])]));
  return v;
}

/** An in-memory API for one object: counts writes, enforces resourceVersion on replace. */
function fakeApi(start?: Obj) {
  let obj = start;
  let rv = 1;
  const writes: string[] = [];
  let raceOnce = false;
  return {
    writes,
    get: () => obj,
    race: () => (raceOnce = true),
    client: {
      // As the API server does: keys come back in its own (sorted) order.
      tryGet: async () => (obj ? (sortedKeys(obj) as Obj) : undefined),
      create: async (o: Obj) => (writes.push('create'), (obj = { ...o, metadata: { ...o.metadata, resourceVersion: String(++rv) } })),
      replace: async (o: Obj) => {
        if (raceOnce) {
          raceOnce = false;
          obj = { ...obj!, metadata: { ...obj!.metadata, resourceVersion: String(++rv) } };
          throw new ConflictError('certificateinventories', o.metadata!.name!, o.metadata?.resourceVersion);
        }
        if (o.metadata?.resourceVersion !== obj?.metadata?.resourceVersion) throw new ConflictError('certificateinventories', o.metadata!.name!, o.metadata?.resourceVersion);
        writes.push('replace');
        return (obj = { ...o, metadata: { ...o.metadata, resourceVersion: String(++rv) } });
      },
    },
  };
}

describe('InventoryPublisher', () => {
  it.each<[string, { steps: { at: string; over?: Partial<InventoryScan> }[]; race?: number; outcomes: string[] }]>([
    ['creates it, then writes nothing while nothing changes', { steps: [{ at: '2026-12-03T00:00:00Z' }, { at: '2026-12-03T06:00:00Z' }, { at: '2026-12-03T12:00:00Z' }], outcomes: ['created', 'unchanged', 'unchanged'] }],
    ['writes when something a person reads changed', { steps: [{ at: '2026-12-03T00:00:00Z' }, { at: '2026-12-03T06:00:00Z', over: { stale: ['api-server 10.0.0.1:6443'] } }], outcomes: ['created', 'updated'] }],
    ['writes at least daily (the agent is alive)', { steps: [{ at: '2026-12-03T00:00:00Z' }, { at: '2026-12-04T00:00:01Z' }], outcomes: ['created', 'updated'] }],
    ['a scan asked for after the node finished a rotation is written even when it reads the same (its scannedAt is what a policy waits for)', { steps: [{ at: '2026-12-03T00:00:00Z' }, { at: '2026-12-03T00:05:00Z', over: { afterChange: true } }], outcomes: ['created', 'updated'] }],
    ['a write that lost a race is decided again from the fresh object', { steps: [{ at: '2026-12-03T00:00:00Z' }, { at: '2026-12-03T06:00:00Z', over: { errors: 1 } }], race: 1, outcomes: ['created', 'updated'] }],
  ])('%s', async (_name, { steps, race, outcomes }) => {
    const api = fakeApi();
    let now = new Date(steps[0]!.at);
    const pub = new InventoryPublisher({ client: api.client, nodeName: 'server-1', distribution: 'rke2', now: () => now });
    const got: string[] = [];
    for (const [i, step] of steps.entries()) {
      now = new Date(step.at);
      if (race === i) api.race();
      // The scan time moves with the clock; daysLeft with it, by whole days only.
      got.push(await pub.publish(scan({ at: now.toISOString(), ...step.over })));
    }
    expect(got).toEqual(outcomes);
    expect(api.writes).toHaveLength(outcomes.filter((o) => o !== 'unchanged').length);
    expect(api.get()!.metadata!.name).toBe('server-1');
    expect(api.get()!.status!.writtenAt).toBe(new Date(steps.filter((_, i) => outcomes[i] !== 'unchanged').at(-1)!.at).toISOString());
  });
});
