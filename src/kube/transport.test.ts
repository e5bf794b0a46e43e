// The lean transport against a local HTTPS server that answers the way
// kube-apiserver does (the real one is in test/e2e/kube-client.e2e.test.ts
// and informer.e2e.test.ts): errors classified as client-node's are, merge
// patches sent as such, lists joined across pages, watch lines cut anywhere
// (even inside a UTF-8 character) parsed whole, `done` called exactly once.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueServing, makeCa } from '../../test/secrets/webhook-pki.js';
import { ConflictError, isAlreadyExists, isConflict, statusReason } from './client.js';
import { kubeAccessFromConfig, loadKubeConfig, type KubeAccess } from './kubeconfig.js';
import { ApiTransport, OPTIONS_TTL_MS, transportFor } from './transport.js';

const NAME = 'api.transport.test';
const ca = makeCa({ cn: 'transport-test-ca' });
const serving = issueServing(ca, { cn: NAME, dns: [NAME, 'localhost'] });

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;
let handler: Handler = (_req, _body, res) => res.end('{}');
const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
let server: Server;
let port: number;

beforeAll(async () => {
  server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function kubeConfig(cluster: Record<string, unknown> = {}, user: Record<string, unknown> = { token: 'token-1' }): KubeAccess {
  return kubeAccessFromConfig({
    clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64'), 'tls-server-name': NAME, ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });
}

const json = (res: ServerResponse, code: number, obj: unknown): void => {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(obj));
};

describe('transportFor', () => {
  it('gives one transport per kubeconfig, also for a plain-http server, and none for a proxy, which only client-node speaks', () => {
    const kc = kubeConfig();
    expect(transportFor(kc)).toBeDefined();
    expect(transportFor(kc)).toBe(transportFor(kc));
    expect(transportFor(kubeConfig({ server: 'http://127.0.0.1:8080' }))).toBeDefined();
    expect(transportFor(kubeConfig({ 'proxy-url': 'http://127.0.0.1:3128' }))).toBeUndefined();
  });
});

describe('ApiTransport.request', () => {
  it('sends the token, JSON and the content type asked for; parses the answer', async () => {
    handler = (_req, body, res) => json(res, 200, { echoed: JSON.parse(body) as unknown });
    const t = new ApiTransport(kubeConfig());
    seen.length = 0;
    const out = await t.request<{ echoed: unknown }>('PATCH', '/apis/g/v1/things/a%2Fb/status', { body: { status: { phase: 'Ü' } }, contentType: 'application/merge-patch+json' });
    expect(out.echoed).toEqual({ status: { phase: 'Ü' } });
    expect(seen[0]).toMatchObject({ method: 'PATCH', url: '/apis/g/v1/things/a%2Fb/status' });
    expect(seen[0]!.headers['content-type']).toBe('application/merge-patch+json');
    expect(seen[0]!.headers.authorization).toBe('Bearer token-1');
    t.close();
  });

  it('turns an error answer into an ApiException the classifiers read (code, reason, body)', async () => {
    const status = (reason: string) => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `it is ${reason}`, reason, code: 409 });
    const t = new ApiTransport(kubeConfig());
    handler = (_req, _body, res) => json(res, 409, status('AlreadyExists'));
    const exists = await t.request('POST', '/x', { body: {} }).catch((e: unknown) => e);
    expect(isAlreadyExists(exists)).toBe(true);
    expect(statusReason(exists)).toBe('AlreadyExists');
    handler = (_req, _body, res) => json(res, 409, status('Conflict'));
    const conflict = await t.request('PUT', '/x', { body: {} }).catch((e: unknown) => e);
    expect(isConflict(conflict)).toBe(true);
    expect(isAlreadyExists(conflict)).toBe(false);
    expect(conflict).not.toBeInstanceOf(ConflictError); // ClusterCustomResource makes that, knowing the object
    t.close();
  });

  it('authenticates in-cluster: the service-account token is read from its file, the CA from its file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'transport-sa-'));
    try {
      writeFileSync(join(dir, 'token'), 'sa-token');
      writeFileSync(join(dir, 'ca.crt'), ca.certPem);
      // A pod's view: the service host and port from the environment, the files of its service account.
      const kc = loadKubeConfig({ serviceAccountDir: dir }, { KUBERNETES_SERVICE_HOST: 'localhost', KUBERNETES_SERVICE_PORT: String(port) });
      handler = (_req, _body, res) => json(res, 200, {});
      seen.length = 0;
      const t = new ApiTransport(kc);
      await t.request('GET', '/api/v1/nodes');
      expect(seen[0]!.headers.authorization).toBe('Bearer sa-token');
      t.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('re-reads credentials from the kubeconfig once they are OPTIONS_TTL_MS old', async () => {
    let now = 1_000_000;
    const dir = mkdtempSync(join(tmpdir(), 'transport-token-'));
    writeFileSync(join(dir, 'token'), 'token-1');
    const kc = kubeConfig({}, { tokenFile: join(dir, 'token') });
    const t = new ApiTransport(kc, () => now);
    handler = (_req, _body, res) => json(res, 200, {});
    seen.length = 0;
    await t.request('GET', '/a');
    writeFileSync(join(dir, 'token'), 'token-2');
    now += OPTIONS_TTL_MS - 1;
    await t.request('GET', '/b');
    now += 1;
    await t.request('GET', '/c');
    expect(seen.map((s) => s.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-1', 'Bearer token-2']);
    t.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('ApiTransport.list', () => {
  it('follows continue tokens and returns one list with the first page\'s resourceVersion', async () => {
    const pages: Record<string, { items: number[]; next?: string; rv: string }> = {
      '': { items: [1, 2], next: 'c1', rv: '100' },
      c1: { items: [3, 4], next: 'c2', rv: '100' },
      c2: { items: [5], rv: '100' },
    };
    handler = (req, _body, res) => {
      const url = new URL(req.url!, 'https://x');
      const page = pages[url.searchParams.get('continue') ?? '']!;
      json(res, 200, { items: page.items, metadata: { resourceVersion: page.rv, ...(page.next ? { continue: page.next } : {}) } });
    };
    const t = new ApiTransport(kubeConfig());
    seen.length = 0;
    const list = await t.list<{ items: number[]; metadata?: { resourceVersion?: string; continue?: string } }>('/api/v1/nodes', { labelSelector: 'a=b' }, { pageSize: 2 });
    expect(list).toEqual({ items: [1, 2, 3, 4, 5], metadata: { resourceVersion: '100' } });
    expect(seen.map((s) => new URL(s.url, 'https://x').searchParams.toString())).toEqual([
      'labelSelector=a%3Db&limit=2',
      'labelSelector=a%3Db&limit=2&continue=c1',
      'labelSelector=a%3Db&limit=2&continue=c2',
    ]);
    t.close();
  });

  it('maps each page as it arrives, before the next page is asked for', async () => {
    const order: string[] = [];
    handler = (req, _body, res) => {
      const next = new URL(req.url!, 'https://x').searchParams.get('continue') ?? '';
      order.push(`GET ${next || 'first'}`);
      json(res, 200, next ? { items: [3], metadata: { resourceVersion: '7' } } : { items: [1, 2], metadata: { resourceVersion: '7', continue: 'c1' } });
    };
    const t = new ApiTransport(kubeConfig());
    const list = await t.list<{ items: number[]; metadata?: { resourceVersion?: string; continue?: string } }>('/api/v1/nodes', {}, {
      pageSize: 2,
      mapItem: (n) => (order.push(`map ${n}`), n * 10),
    });
    expect(list.items).toEqual([10, 20, 30]);
    expect(order).toEqual(['GET first', 'map 1', 'map 2', 'GET c1', 'map 3']);
    t.close();
  });
});

describe('ApiTransport.watch', () => {
  function watchOnce(t: ApiTransport): Promise<{ events: [string, unknown][]; err: unknown; doneCalls: number; controller: AbortController }> {
    return new Promise((resolve) => {
      const events: [string, unknown][] = [];
      let doneCalls = 0;
      let controller: AbortController;
      void t
        .watch('/api/v1/nodes', { resourceVersion: '5' }, (type, obj) => events.push([type, obj]), (err) => {
          doneCalls++;
          setTimeout(() => resolve({ events, err, doneCalls, controller }), 50);
        })
        .then((c) => (controller = c));
    });
  }

  it('parses lines cut anywhere, skips a line that is not JSON, and calls done(null) once when the server closes', async () => {
    const lines = [
      JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'n-ä' } } }),
      'not json',
      JSON.stringify({ type: 'MODIFIED', object: { metadata: { name: 'n-€' } } }),
      JSON.stringify({ type: 'DELETED', object: { metadata: { name: 'n-3' } } }),
    ];
    const bytes = Buffer.from(lines.join('\n') + '\n');
    // Cut inside the two-byte "ä" and the three-byte "€", and inside a line.
    const cuts = [bytes.indexOf(Buffer.from('ä')) + 1, bytes.indexOf(Buffer.from('€')) + 2, bytes.length - 5];
    handler = (req, _body, res) => {
      expect(new URL(req.url!, 'https://x').searchParams.get('watch')).toBe('true');
      res.writeHead(200, { 'Content-Type': 'application/json' });
      let from = 0;
      const send = (i: number): void => {
        if (i > cuts.length) return void res.end();
        const to = i < cuts.length ? cuts[i]! : bytes.length;
        res.write(bytes.subarray(from, to));
        from = to;
        setTimeout(() => send(i + 1), 20);
      };
      send(0);
    };
    const t = new ApiTransport(kubeConfig());
    const r = await watchOnce(t);
    expect(r.events).toEqual([
      ['ADDED', { metadata: { name: 'n-ä' } }],
      ['MODIFIED', { metadata: { name: 'n-€' } }],
      ['DELETED', { metadata: { name: 'n-3' } }],
    ]);
    expect(r.err).toBeNull();
    expect(r.doneCalls).toBe(1);
    t.close();
  });

  it('a refused watch ends with the HTTP status in statusCode (ListWatch relists on 410)', async () => {
    handler = (_req, _body, res) => json(res, 410, { kind: 'Status', code: 410, reason: 'Expired' });
    const t = new ApiTransport(kubeConfig());
    const r = await watchOnce(t);
    expect((r.err as { statusCode?: number }).statusCode).toBe(410);
    expect(r.doneCalls).toBe(1);
    t.close();
  });

  it('abort ends the watch once, with an AbortError', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(JSON.stringify({ type: 'ADDED', object: {} }) + '\n');
    };
    const t = new ApiTransport(kubeConfig());
    let doneCalls = 0;
    let doneErr: unknown;
    let events = 0;
    const controller = await t.watch('/w', {}, () => events++, (err) => {
      doneCalls++;
      doneErr = err;
    });
    for (let i = 0; i < 100 && events === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(events).toBe(1);
    controller.abort();
    controller.abort();
    await new Promise((r) => setTimeout(r, 50));
    expect((doneErr as Error).name).toBe('AbortError');
    expect(doneCalls).toBe(1);
    server.closeAllConnections();
    t.close();
  });
});
