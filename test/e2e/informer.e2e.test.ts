// The informer wrapper against the real API server: handlers enqueue keys for
// adds, updates and deletes; the label selector limits both list and watch;
// the informer survives its connections being reset and the API server being
// unreachable for a while, and its periodic resync re-enqueues every key from
// its cache without listing again.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubernetesListObject, V1ConfigMap } from '@kubernetes/client-node';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { Informer, nodeInformer, watcherFor } from '../../src/kube/informer.js';
import type { KubeAccess } from '../../src/kube/kubeconfig.js';
import { loadKubeConfig } from '../../src/kube/client.js';
import { kubeConfigVia, TcpProxy } from './support/tcp-proxy.js';

const NS = 'informer-e2e';
const SELECTOR = 'app=informer-e2e';
const OWN_NODE = 'informer-e2e-node';

class RecordingSink {
  readonly keys: string[] = [];
  add(key: string): void {
    this.keys.push(key);
  }
  count(key: string): number {
    return this.keys.filter((k) => k === key).length;
  }
  clear(): void {
    this.keys.length = 0;
  }
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function configMapInformer(kc: KubeAccess, opts: Partial<ConstructorParameters<typeof Informer<V1ConfigMap>>[0]> = {}): Informer<V1ConfigMap> {
  const core = kc.api((m) => m.CoreV1Api);
  return new Informer<V1ConfigMap>({
    watcher: watcherFor(kc),
    name: 'configmaps',
    path: `/api/v1/namespaces/${NS}/configmaps`,
    list: async (labelSelector, transform) => {
      const list = (await core.listNamespacedConfigMap({ namespace: NS, labelSelector })) as KubernetesListObject<V1ConfigMap>;
      return { ...list, items: list.items.map(transform) };
    },
    labelSelector: SELECTOR,
    ...opts,
  });
}

function configMap(name: string, labels: Record<string, string>, data: Record<string, string> = {}): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS, labels }, data });
}

const informers: { stop(): void }[] = [];
function track<T extends { stop(): void }>(i: T): T {
  informers.push(i);
  return i;
}

describe('Informer against the real API server', () => {
  beforeAll(async () => {
    await kubectlOk(['create', 'namespace', NS]);
    // One object that exists before the informer starts: must arrive via the initial list.
    await kubectlOk(['apply', '-f', '-'], { input: configMap('before', { app: 'informer-e2e' }) });
  });
  afterEach(() => {
    for (const i of informers.splice(0)) i.stop();
  });
  afterAll(async () => {
    await kubectl(['delete', 'node', OWN_NODE, '--ignore-not-found', '--wait=false']);
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  it('syncs, then enqueues keys for add, update and delete of selected objects only', async () => {
    const kc = loadKubeConfig();
    const sink = new RecordingSink();
    const inf = track(configMapInformer(kc).enqueueTo(sink));
    expect(inf.hasSynced()).toBe(false);
    inf.start();
    await inf.waitForSync(30_000);
    expect(inf.hasSynced()).toBe(true);
    expect(inf.get('before', NS)?.metadata?.name).toBe('before');
    expect(inf.getByKey(`${NS}/before`)).toBeDefined();
    expect(sink.keys).toEqual([`${NS}/before`]);

    await kubectlOk(['apply', '-f', '-'], { input: configMap('selected', { app: 'informer-e2e' }) });
    await kubectlOk(['apply', '-f', '-'], { input: configMap('ignored', { app: 'other' }) });
    await waitFor('add of selected', () => sink.count(`${NS}/selected`) === 1);

    await kubectlOk(['-n', NS, 'patch', 'configmap', 'selected', '--type=merge', '-p', '{"data":{"k":"v2"}}']);
    await waitFor('update of selected', () => sink.count(`${NS}/selected`) === 2);
    expect(inf.get('selected', NS)?.data).toEqual({ k: 'v2' });

    await kubectlOk(['-n', NS, 'delete', 'configmap', 'selected']);
    await waitFor('delete of selected', () => sink.count(`${NS}/selected`) === 3);
    expect(inf.get('selected', NS)).toBeUndefined();

    // the unselected object was neither listed nor watched
    expect(sink.count(`${NS}/ignored`)).toBe(0);
    expect(inf.get('ignored', NS)).toBeUndefined();
    expect(inf.keys().sort()).toEqual([`${NS}/before`]);
  });

  it('maps objects to other keys (e.g. an owner) through keysOf', async () => {
    const kc = loadKubeConfig();
    const sink = new RecordingSink();
    const inf = track(
      configMapInformer(kc, { labelSelector: undefined }).enqueueTo(sink, (cm) => cm.metadata?.labels?.owner),
    );
    inf.start();
    await inf.waitForSync();
    await kubectlOk(['apply', '-f', '-'], { input: configMap('child-1', { owner: 'rotation-a' }) });
    await waitFor('owner key', () => sink.count('rotation-a') === 1);
    // objects without the label map to no key
    expect(sink.keys.every((k) => k === 'rotation-a')).toBe(true);
    await kubectlOk(['-n', NS, 'delete', 'configmap', 'child-1']);
    await waitFor('owner key on delete', () => sink.count('rotation-a') === 2);
  });

  it('node informer: sees the cluster nodes, cut down by its transform, and enqueues a node of its own, without touching the others', async () => {
    const kc = loadKubeConfig();
    const sink = new RecordingSink();
    // As the controller's planner view does: the cache keeps only what the transform returns,
    // for listed Nodes (cut page by page through the transport) and watched ones alike.
    const inf = track(nodeInformer(kc, { transform: (n) => ({ metadata: { name: n.metadata?.name, labels: n.metadata?.labels } }) }).enqueueTo(sink));
    inf.start();
    await inf.waitForSync();
    const names = inf.keys();
    for (const n of ['rke2-server-1', 'rke2-worker-1']) expect(names).toContain(n);
    expect(inf.get('rke2-server-1')).toEqual({ metadata: { name: 'rke2-server-1', labels: expect.any(Object) } });
    const before = sink.keys.length;
    expect(before).toBeGreaterThanOrEqual(6);

    await kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: OWN_NODE, labels: { 'informer-e2e': 'true' } } }),
    });
    await waitFor('own node added', () => sink.count(OWN_NODE) >= 1);
    expect(inf.get(OWN_NODE)).toEqual({ metadata: { name: OWN_NODE, labels: { 'informer-e2e': 'true' } } });
    await kubectlOk(['delete', 'node', OWN_NODE]);
    await waitFor('own node deleted', () => inf.get(OWN_NODE) === undefined);
    expect(sink.count(OWN_NODE)).toBeGreaterThanOrEqual(2);
  });

  it('survives its watch being reset and the API server being unreachable, and catches up', async () => {
    const base = loadKubeConfig();
    const upstreamPort = Number(new URL(base.getCurrentCluster()!.server).port);
    const proxy = new TcpProxy(upstreamPort);
    const port = await proxy.open();
    const kc = kubeConfigVia(base, port);
    const errors: unknown[] = [];
    const sink = new RecordingSink();
    const inf = track(
      configMapInformer(kc, { restartBackoff: { baseMs: 200, maxMs: 1000 }, onError: (e) => errors.push(e) }).enqueueTo(sink),
    );
    try {
      inf.start();
      await inf.waitForSync();
      await waitFor('watch connected', () => proxy.activeConnections() > 0);

      // 1. Reset every connection: the stream errors, ListWatch stops; we must restart it.
      await proxy.cut();
      // 2. While unreachable, change the world.
      await kubectlOk(['apply', '-f', '-'], { input: configMap('during-outage', { app: 'informer-e2e' }) });
      await kubectlOk(['-n', NS, 'patch', 'configmap', 'before', '--type=merge', '-p', '{"data":{"outage":"yes"}}']);
      await waitFor('several failed restarts (connection refused)', () => errors.length >= 2);
      expect(inf.get('during-outage', NS)).toBeUndefined();
      // 3. Back online: the informer resumes from its resourceVersion and catches up.
      await proxy.open();
      await waitFor('object created during the outage', () => inf.get('during-outage', NS) !== undefined, 30_000);
      await waitFor('update made during the outage', () => inf.get('before', NS)?.data?.outage === 'yes', 30_000);
      expect(sink.count(`${NS}/during-outage`)).toBe(1);
      expect(inf.restartCount()).toBeGreaterThanOrEqual(1);

      // 4. And it keeps watching afterwards.
      await kubectlOk(['apply', '-f', '-'], { input: configMap('after-outage', { app: 'informer-e2e' }) });
      await waitFor('object created after recovery', () => sink.count(`${NS}/after-outage`) === 1);
    } finally {
      inf.stop();
      await proxy.cut();
    }
  });

  it('resyncs periodically from its cache: every key enqueued again, no LIST sent to the API server', async () => {
    const kc = loadKubeConfig();
    const core = kc.api((m) => m.CoreV1Api);
    let lists = 0;
    const sink = new RecordingSink();
    const inf = track(
      configMapInformer(kc, {
        resyncPeriodMs: 1500,
        list: (labelSelector) => {
          lists++;
          return core.listNamespacedConfigMap({ namespace: NS, labelSelector }) as Promise<KubernetesListObject<V1ConfigMap>>;
        },
      }).enqueueTo(sink),
    );
    inf.start();
    await inf.waitForSync();
    const keys = inf.keys().sort();
    expect(keys.length).toBeGreaterThanOrEqual(2);
    sink.clear();
    await waitFor('two resyncs', () => keys.every((k) => sink.count(k) >= 2), 10_000);
    expect(inf.keys().sort()).toEqual(keys);
    // One LIST at start; the resyncs sent none (a relist every period costs the API server at scale).
    expect(lists).toBe(1);
    // The watch goes on through the resyncs.
    await kubectlOk(['apply', '-f', '-'], { input: configMap('after-resync', { app: 'informer-e2e' }) });
    await waitFor('watch after resync', () => inf.get('after-resync', NS) !== undefined);
    expect(lists).toBe(1);
  });

  it('retries the initial list until the API server answers, without throwing', async () => {
    const base = loadKubeConfig();
    const proxy = new TcpProxy(Number(new URL(base.getCurrentCluster()!.server).port));
    const port = await proxy.open();
    await proxy.cut(); // nothing listens on `port` now
    const kc = kubeConfigVia(base, port);
    const errors: unknown[] = [];
    const inf = track(configMapInformer(kc, { restartBackoff: { baseMs: 100, maxMs: 400 }, onError: (e) => errors.push(e) }));
    try {
      inf.start();
      await waitFor('two failed lists (connection refused)', () => errors.length >= 2);
      expect(inf.hasSynced()).toBe(false);
      await proxy.open();
      await inf.waitForSync(15_000);
      expect(inf.get('before', NS)).toBeDefined();
    } finally {
      inf.stop();
      await proxy.cut();
    }
  });
});
