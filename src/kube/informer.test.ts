// The informer's object transform (default: strip metadata.managedFields),
// applied to list items and to watch events alike. The "API server" is a
// loopback HTTP server that answers the watch with one ADDED and one MODIFIED
// event; the list comes from the list function.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { Informer, stripManagedFields, watcherFor } from './informer.js';
import { kubeAccessFromConfig, type KubeAccess } from './kubeconfig.js';

const managedFields = [{ manager: 'kubectl', operation: 'Update', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': {} } }];

function object(name: string, rv: string, data = 'x'): KubernetesObject & { data: string } {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns', resourceVersion: rv, managedFields }, data };
}

let server: Server | undefined;
afterEach(() => {
  server?.close();
});

async function fakeWatchServer(): Promise<string> {
  server = createServer((req, res) => {
    if (!req.url?.includes('watch=true')) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(`${JSON.stringify({ type: 'ADDED', object: object('b', '11') })}\n`);
    res.write(`${JSON.stringify({ type: 'MODIFIED', object: object('a', '12', 'changed') })}\n`);
    // keep the stream open, as a watch does
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

function kubeConfig(server: string): KubeAccess {
  return kubeAccessFromConfig({ clusters: [{ name: 'c', cluster: { server } }], contexts: [{ name: 'x', context: { cluster: 'c' } }], 'current-context': 'x' });
}

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('Informer transform', () => {
  it('stripManagedFields drops only metadata.managedFields', () => {
    const o = object('a', '1');
    expect(stripManagedFields(o)).toEqual({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'ns', resourceVersion: '1' }, data: 'x' });
    expect(stripManagedFields({ metadata: {} })).toEqual({ metadata: {} });
  });

  it('caches list items and watched objects without managedFields by default; a custom transform replaces it', async () => {
    const url = await fakeWatchServer();
    const list = async (_: unknown, transform: (o: KubernetesObject) => KubernetesObject): Promise<KubernetesListObject<KubernetesObject>> => ({
      apiVersion: 'v1',
      kind: 'List',
      metadata: { resourceVersion: '10' },
      // 'c' only ever comes from the list: what is cached of it is what the list made of it.
      items: [object('a', '10'), object('c', '10')].map(transform),
    });
    for (const [transform, expectManaged] of [[undefined, false], [(o: KubernetesObject) => o, true]] as const) {
      const informer = new Informer<KubernetesObject>({ watcher: watcherFor(kubeConfig(url)), path: '/api/v1/namespaces/ns/configmaps', list, resyncPeriodMs: 0, transform });
      informer.start();
      await informer.waitForSync(5000);
      await waitFor(() => informer.get('b', 'ns') !== undefined && informer.get('a', 'ns')?.metadata?.resourceVersion === '12');
      informer.stop();
      expect((informer.get('a', 'ns') as { data?: string }).data).toBe('changed');
      for (const name of ['a', 'b', 'c']) expect(informer.get(name, 'ns')!.metadata!.managedFields !== undefined).toBe(expectManaged);
    }
  });
});

describe('Informer list', () => {
  it('hands out the same array while the cache is unchanged, and a new one after any change', async () => {
    let later: (() => void) | undefined;
    server = createServer((req, res) => {
      if (!req.url?.includes('watch=true')) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`${JSON.stringify({ type: 'ADDED', object: object('b', '11') })}\n`);
      later = () => res.write(`${JSON.stringify({ type: 'DELETED', object: object('a', '12') })}\n`);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const list = async (): Promise<KubernetesListObject<KubernetesObject>> => ({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '10' }, items: [object('a', '10')] });
    const informer = new Informer<KubernetesObject>({ watcher: watcherFor(kubeConfig(url)), path: '/api/v1/namespaces/ns/configmaps', list, resyncPeriodMs: 0 });
    informer.start();
    await informer.waitForSync(5000);
    await waitFor(() => informer.get('b', 'ns') !== undefined && later !== undefined);
    const first = informer.list();
    expect(first.map((o) => o.metadata!.name).sort()).toEqual(['a', 'b']);
    expect(informer.list()).toBe(first);
    later!();
    await waitFor(() => informer.get('a', 'ns') === undefined);
    const second = informer.list();
    informer.stop();
    expect(second).not.toBe(first);
    expect(second.map((o) => o.metadata!.name)).toEqual(['b']);
    expect(first.map((o) => o.metadata!.name).sort()).toEqual(['a', 'b']); // what was handed out stays as it was
  });
});

describe('Informer watch errors', () => {
  it('relists after a watch ERROR event of 410 Gone, even with a transform that keeps only what a planner reads', async () => {
    const watches: string[] = [];
    server = createServer((req, res) => {
      if (!req.url?.includes('watch=true')) return void res.writeHead(404).end();
      watches.push(new URL(req.url, 'http://x').searchParams.get('resourceVersion') ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      // What kube-apiserver sends for a resourceVersion compacted away, then it ends the watch.
      if (watches.length === 1) res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 } })}\n`);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    let lists = 0;
    const list = async (): Promise<KubernetesListObject<KubernetesObject>> => ({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(10 * ++lists) }, items: [object('a', '10')] });
    // Like the controller's plannerView: a new object with the fields it names, so a Status loses its code.
    const transform = (o: KubernetesObject): KubernetesObject => ({ metadata: { name: o.metadata?.name, namespace: o.metadata?.namespace, resourceVersion: o.metadata?.resourceVersion } });
    const informer = new Informer<KubernetesObject>({ watcher: watcherFor(kubeConfig(url)), path: '/api/v1/namespaces/ns/configmaps', list, resyncPeriodMs: 0, transform });
    informer.start();
    await informer.waitForSync(5000);
    await waitFor(() => watches.length >= 2);
    informer.stop();
    expect(lists).toBe(2);
    expect(watches).toEqual(['10', '20']);
  });
});
