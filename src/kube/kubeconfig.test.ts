// The kubeconfig as kubectl reads it (kubeconfig.ts): which file and context
// win, what a request is given (TLS material, token), errors that name the
// file and the field, and client-node loaded only when asked for, with the
// same context.
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { stringify } from 'yaml';
import { kubeAccessFromConfig, loadKubeConfig, type HttpsCredentialOptions } from './kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const b64 = (s: string) => Buffer.from(s).toString('base64');

function file(name: string, doc: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof doc === 'string' ? doc : stringify(doc));
  return path;
}

function config(server: string, user: Record<string, unknown>, cluster: Record<string, unknown> = {}, name = 'main') {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, ...cluster } }],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    'current-context': name,
  };
}

async function options(kc: { applyToHTTPSOptions(o: HttpsCredentialOptions): Promise<void> }): Promise<Record<string, unknown>> {
  const o: HttpsCredentialOptions = {};
  await kc.applyToHTTPSOptions(o);
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString() : v]));
}

describe('loadKubeConfig', () => {
  it('gives a request the inline TLS material and token of the current context, and the server without its trailing slash', async () => {
    const kc = loadKubeConfig({
      kubeconfig: file('inline', config('https://10.0.0.1:6443/', { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY'), token: 't0k' }, { 'certificate-authority-data': b64('CA'), 'tls-server-name': 'kubernetes' })),
    });
    expect(kc.getCurrentContext()).toBe('main');
    expect(kc.getCurrentCluster()).toEqual({ name: 'main', server: 'https://10.0.0.1:6443', skipTLSVerify: false, tlsServerName: 'kubernetes', proxyUrl: undefined });
    expect(await options(kc)).toEqual({ ca: 'CA', cert: 'CERT', key: 'KEY', servername: 'kubernetes', headers: { Authorization: 'Bearer t0k' } });
    expect(kc.needsClientNode()).toBe(false);
  });

  it('reads files relative to the kubeconfig’s directory, again on every call (a renewed certificate, a rotated token)', async () => {
    const sub = mkdtempSync(join(dir, 'files-'));
    writeFileSync(join(sub, 'ca.crt'), 'CA1');
    writeFileSync(join(sub, 'client.crt'), 'CERT1');
    writeFileSync(join(sub, 'client.key'), 'KEY1');
    writeFileSync(join(sub, 'token'), 'first\n');
    const path = join(sub, 'config');
    writeFileSync(path, stringify(config('https://h:6443', { 'client-certificate': 'client.crt', 'client-key': 'client.key', tokenFile: 'token' }, { 'certificate-authority': 'ca.crt', 'insecure-skip-tls-verify': true })));
    const kc = loadKubeConfig({ kubeconfig: path });
    expect(await options(kc)).toEqual({ ca: 'CA1', cert: 'CERT1', key: 'KEY1', rejectUnauthorized: false, headers: { Authorization: 'Bearer first' } });
    writeFileSync(join(sub, 'client.crt'), 'CERT2');
    writeFileSync(join(sub, 'token'), 'second');
    expect(await options(kc)).toMatchObject({ cert: 'CERT2', headers: { Authorization: 'Bearer second' } });
  });

  it('merges $KUBECONFIG as kubectl does: the first file to name a cluster, user, context or the current context wins', async () => {
    const first = file('first', { ...config('https://first:6443', { token: 'one' }, {}, 'shared'), 'current-context': 'shared' });
    const second = file('second', {
      clusters: [{ name: 'shared', cluster: { server: 'https://second:6443' } }, { name: 'other', cluster: { server: 'https://other:6443' } }],
      contexts: [{ name: 'other', context: { cluster: 'other' } }],
      'current-context': 'other',
    });
    const kc = loadKubeConfig({}, { KUBECONFIG: [first, second].join(delimiter) });
    expect(kc.getCurrentContext()).toBe('shared');
    expect(kc.getCurrentCluster().server).toBe('https://first:6443');
    const reversed = loadKubeConfig({}, { KUBECONFIG: [second, first].join(delimiter) });
    expect(reversed.getCurrentContext()).toBe('other');
    expect(reversed.getCurrentCluster().server).toBe('https://other:6443');
    expect(await options(reversed)).toEqual({});
    // --kubeconfig wins over $KUBECONFIG.
    expect(loadKubeConfig({ kubeconfig: second }, { KUBECONFIG: first }).getCurrentContext()).toBe('other');
  });

  it('in a pod, uses the service account and the service host (an IPv6 address in brackets)', () => {
    const kc = loadKubeConfig({}, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' });
    expect(kc.source).toBe('in-cluster');
    expect(kc.getCurrentCluster().server).toBe('https://[fd00::1]:443');
    expect(loadKubeConfig({}, { KUBERNETES_SERVICE_HOST: '10.43.0.1', KUBERNETES_SERVICE_PORT: '443' }).getCurrentCluster().server).toBe('https://10.43.0.1:443');
  });

  it.each([
    ['no-current-context', { clusters: [] }, /kubeconfig \S+no-current-context: current-context is not set/],
    ['unknown-context', { 'current-context': 'x' }, /current-context "x" is not among its contexts/],
    ['unknown-cluster', { contexts: [{ name: 'x', context: { cluster: 'c' } }], 'current-context': 'x' }, /context "x" names cluster "c", which is not among its clusters/],
    ['unknown-user', { ...config('https://h', {}), contexts: [{ name: 'main', context: { cluster: 'main', user: 'nobody' } }] }, /names user "nobody", which is not among its users/],
    ['no-server', { ...config('https://h', {}), clusters: [{ name: 'main', cluster: {} }] }, /cluster "main" has no server/],
    ['unnamed-entry', { ...config('https://h', {}), users: [{ user: {} }] }, /users\[0\]\.name is missing/],
    ['not-yaml', 'clusters: [', /kubeconfig \S+not-yaml: /],
  ])('refuses a kubeconfig with %s, naming the file and the field', (name, doc, message) => {
    expect(() => loadKubeConfig({ kubeconfig: file(name, doc) })).toThrow(message);
  });

  it('names the missing file a request needs', async () => {
    const kc = loadKubeConfig({ kubeconfig: file('missing-key', config('https://h', { 'client-certificate-data': b64('C'), 'client-key': '/nonexistent/client.key' })) });
    await expect(options(kc)).rejects.toThrow(/kubeconfig \S+missing-key: user client-key \/nonexistent\/client\.key: ENOENT/);
  });
});

describe('client-node, when asked for', () => {
  it('is given the same context: cluster, credentials and proxy', async () => {
    const kc = kubeAccessFromConfig(config('https://h:6443', { token: 'abc' }, { 'proxy-url': 'http://proxy:3128', 'certificate-authority-data': b64('CA') }));
    const cn = await kc.clientNode();
    expect(cn.getCurrentContext()).toBe('main');
    expect(cn.getCurrentCluster()).toMatchObject({ server: 'https://h:6443', proxyUrl: 'http://proxy:3128', caData: b64('CA') });
    const o: HttpsCredentialOptions = {};
    await cn.applyToHTTPSOptions(o as never);
    expect((o.headers as Record<string, string>).Authorization).toBe('Bearer abc');
    expect(await kc.clientNode()).toBe(cn);
  });

  it('reads a token file through client-node’s tokenFile provider (which re-reads it), in a pod as from a kubeconfig', async () => {
    const sa = mkdtempSync(join(dir, 'sa-'));
    writeFileSync(join(sa, 'token'), 'sa-token\n');
    writeFileSync(join(sa, 'ca.crt'), 'CA');
    const kc = loadKubeConfig({ serviceAccountDir: sa }, { KUBERNETES_SERVICE_HOST: '10.43.0.1', KUBERNETES_SERVICE_PORT: '443' });
    expect(await options(kc)).toEqual({ ca: 'CA', headers: { Authorization: 'Bearer sa-token' } });
    const cn = await kc.clientNode();
    expect(cn.getCurrentCluster()).toMatchObject({ server: 'https://10.43.0.1:443', caFile: join(sa, 'ca.crt') });
    expect(cn.getCurrentUser()?.authProvider).toEqual({ name: 'tokenFile', config: { tokenFile: join(sa, 'token') } });
    const o: HttpsCredentialOptions = {};
    await cn.applyToHTTPSOptions(o as never);
    expect((o.headers as Record<string, string>).Authorization).toMatch(/^Bearer sa-token\s*$/);
  });

  it('authenticates a user that only client-node speaks (an exec plugin)', async () => {
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } });
    const kc = kubeAccessFromConfig(config('https://h', { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'sh', args: ['-c', `echo '${credential}'`], interactiveMode: 'Never' } }));
    expect(kc.needsClientNode()).toBe(true);
    expect(await options(kc)).toMatchObject({ headers: { Authorization: 'Bearer from-exec' } });
  });

  it('hands out a typed API at once that imports client-node on its first call, and is not a thenable', async () => {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: req.url!.split('/').pop() } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const kc = kubeAccessFromConfig(config(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {}, { 'insecure-skip-tls-verify': true }));
      const core = kc.api((m) => m.CoreV1Api);
      expect(await Promise.resolve(core)).toBe(core);
      const ns = await core.readNamespace({ name: 'kube-system' });
      expect(ns.metadata?.name).toBe('kube-system');
    } finally {
      server.close();
    }
  });

  it('keeps the context and credentials when pointed at another address', async () => {
    const kc = kubeAccessFromConfig(config('https://h:6443', { token: 'abc' }));
    const moved = kc.withServer('https://127.0.0.1:9999/');
    expect(moved.getCurrentCluster().server).toBe('https://127.0.0.1:9999');
    expect(await options(moved)).toEqual(await options(kc));
    expect((await moved.clientNode()).getCurrentCluster()?.server).toBe('https://127.0.0.1:9999');
  });
});

