import { describe, expect, it } from '@jest/globals';
import { ApiException, type CoreV1Event } from '@kubernetes/client-node';
import { EventRecorder, type EventClient } from './events.js';

interface Call {
  /** When the request was sent (performance.now()). */
  at: number;
  op: 'create' | 'patch';
  namespace: string;
  name?: string;
  body: Partial<CoreV1Event> & { count?: number };
}

class FakeEvents {
  calls: Call[] = [];
  stored = new Map<string, CoreV1Event>();
  failCreates = false;
  client(): EventClient {
    return {
      createNamespacedEvent: async ({ namespace, body }: { namespace: string; body: CoreV1Event }) => {
        const at = performance.now();
        await new Promise((r) => setTimeout(r, 2));
        if (this.failCreates) throw new ApiException(500, 'boom', '{}', {});
        this.calls.push({ at, op: 'create', namespace, name: body.metadata?.name, body });
        this.stored.set(`${namespace}/${body.metadata?.name}`, body);
        return body;
      },
      patchNamespacedEvent: async ({ name, namespace, body }: { name: string; namespace: string; body: Partial<CoreV1Event> }) => {
        const at = performance.now();
        await new Promise((r) => setTimeout(r, 2));
        this.calls.push({ at, op: 'patch', namespace, name, body });
        const ev = this.stored.get(`${namespace}/${name}`);
        if (!ev) throw new ApiException(404, 'gone', '{"reason":"NotFound"}', {});
        Object.assign(ev, body);
        return ev;
      },
    } as unknown as EventClient;
  }
}

const rotation = { apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: 'rotate-all', uid: 'u-1' } };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `done` holds (timers run late on a loaded machine: wait for the effect, not a fixed time). */
async function until(done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

describe('EventRecorder', () => {
  it('creates a core/v1 Event in `default` for a cluster-scoped object, with the involved object and source', async () => {
    const fake = new FakeEvents();
    const rec = new EventRecorder({ client: fake.client(), component: 'certrotator-controller', instance: 'pod-1' });
    rec.normal(rotation, 'NodeStarted', 'rotating node rke2-server-1');
    await rec.flush();
    expect(fake.calls).toHaveLength(1);
    const call = fake.calls[0]!;
    expect(call.op).toBe('create');
    expect(call.namespace).toBe('default');
    expect(call.name).toMatch(/^rotate-all\.[0-9a-f]+$/);
    expect(call.body).toMatchObject({
      type: 'Normal',
      reason: 'NodeStarted',
      message: 'rotating node rke2-server-1',
      count: 1,
      involvedObject: { apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', name: 'rotate-all', uid: 'u-1' },
      source: { component: 'certrotator-controller', host: 'pod-1' },
      reportingComponent: 'certrotator-controller',
      reportingInstance: 'pod-1',
    });
    expect(call.body.involvedObject?.namespace).toBeUndefined();
  });

  it('puts events of a namespaced object in its namespace', async () => {
    const fake = new FakeEvents();
    const rec = new EventRecorder({ client: fake.client(), component: 'c' });
    rec.warning({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'kube-system' } }, 'Bad', 'bad');
    await rec.flush();
    expect(fake.calls[0]!.namespace).toBe('kube-system');
    expect(fake.calls[0]!.body.type).toBe('Warning');
  });

  it('folds a hot loop of identical events into one Event with a count, and at most one write per interval', async () => {
    const fake = new FakeEvents();
    const rec = new EventRecorder({ client: fake.client(), component: 'c', minUpdateIntervalMs: 100 });
    for (let i = 0; i < 1000; i++) rec.warning(rotation, 'NodeFailed', 'node rke2-worker-1 failed at step restart');
    // the first occurrence is written at once; the other 999 wait for the interval
    await until(() => fake.calls.length >= 1);
    expect(fake.calls[0]!.body.count).toBe(1);
    await until(() => fake.calls.length >= 2);
    expect(fake.calls[1]!.at - fake.calls[0]!.at).toBeGreaterThanOrEqual(95); // not before the interval (timer granularity)
    await rec.flush(); // whatever the recorder still held is written now: still only two writes
    expect(fake.calls).toHaveLength(2);
    expect(fake.calls[1]).toMatchObject({ op: 'patch', name: fake.calls[0]!.name, body: { count: 1000 } });
    expect(fake.stored.size).toBe(1);
    // later occurrences keep counting on the same Event
    rec.warning(rotation, 'NodeFailed', 'node rke2-worker-1 failed at step restart');
    await rec.flush();
    expect(fake.calls).toHaveLength(3);
    expect(fake.calls[2]!.body.count).toBe(1001);
  });

  it('keeps different reasons, messages, types and objects apart', async () => {
    const fake = new FakeEvents();
    const rec = new EventRecorder({ client: fake.client(), component: 'c' });
    rec.normal(rotation, 'NodeStarted', 'n1');
    rec.normal(rotation, 'NodeStarted', 'n2');
    rec.normal(rotation, 'NodeRotated', 'n1');
    rec.warning(rotation, 'NodeStarted', 'n1');
    rec.normal({ ...rotation, metadata: { name: 'other', uid: 'u-2' } }, 'NodeStarted', 'n1');
    rec.normal(rotation, 'NodeStarted', 'n1'); // duplicate of the first
    await rec.flush();
    const creates = fake.calls.filter((c) => c.op === 'create');
    expect(creates).toHaveLength(5);
    const patches = fake.calls.filter((c) => c.op === 'patch');
    expect(patches).toHaveLength(1);
    expect(patches[0]!.body.count).toBe(2);
  });

  it('starts a new Event when the old one expired (404 on patch) or the window passed', async () => {
    const fake = new FakeEvents();
    let now = 1_000_000;
    const rec = new EventRecorder({ client: fake.client(), component: 'c', minUpdateIntervalMs: 0, aggregationWindowMs: 60_000, now: () => now });
    rec.normal(rotation, 'R', 'm');
    await rec.flush();
    fake.stored.clear(); // TTL expired on the server
    now += 1000;
    rec.normal(rotation, 'R', 'm');
    await rec.flush();
    expect(fake.calls.map((c) => c.op)).toEqual(['create', 'patch', 'create']);
    expect(fake.calls[2]!.body.count).toBe(2);
    now += 120_000; // outside the aggregation window: a new series
    rec.normal(rotation, 'R', 'm');
    await rec.flush();
    expect(fake.calls.map((c) => c.op)).toEqual(['create', 'patch', 'create', 'create']);
    expect(fake.calls[3]!.body.count).toBe(1);
  });

  it('never throws to the caller when the API server fails, and truncates long messages', async () => {
    const fake = new FakeEvents();
    fake.failCreates = true;
    const warnings: string[] = [];
    const rec = new EventRecorder({ client: fake.client(), component: 'c', logger: { warn: (_o, m) => warnings.push(m) } });
    expect(() => rec.normal(rotation, 'R', 'x'.repeat(5000))).not.toThrow();
    await rec.flush();
    expect(warnings).toEqual(['failed to record event']);
    fake.failCreates = false;
    rec.normal(rotation, 'R2', 'y'.repeat(5000));
    await rec.flush();
    expect(fake.calls[0]!.body.message).toHaveLength(1024);
    expect(fake.calls[0]!.body.message!.endsWith('...')).toBe(true);
  });

  it('bounds its memory: evicts the least recently used keys', async () => {
    const fake = new FakeEvents();
    const rec = new EventRecorder({ client: fake.client(), component: 'c', maxKeys: 3, minUpdateIntervalMs: 0 });
    for (const m of ['a', 'b', 'c', 'd']) rec.normal(rotation, 'R', m);
    await rec.flush();
    rec.normal(rotation, 'R', 'a'); // evicted: a new Event, not a patch
    rec.normal(rotation, 'R', 'd'); // remembered: a patch
    await rec.flush();
    expect(fake.calls.slice(4).map((c) => `${c.op}:${c.body.message ?? ''}:${c.body.count}`)).toEqual(['create:a:1', 'patch::2']);
  });
});
