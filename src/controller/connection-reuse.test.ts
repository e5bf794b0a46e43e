// reuseConnections: one connection pool per TLS identity, and the TLS files
// read once per FILE_TTL_MS rather than on every request.
import { describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILE_TTL_MS, reuseConnections } from './connection-reuse.js';

type Https = { ca?: Buffer; cert?: Buffer; key?: Buffer; headers?: Record<string, string> };

function kubeconfigWithFiles(dir: string): KubeConfig {
  for (const f of ['ca', 'cert', 'key']) writeFileSync(join(dir, f), `${f} one`);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:6443', caFile: join(dir, 'ca') }],
    users: [{ name: 'u', certFile: join(dir, 'cert'), keyFile: join(dir, 'key'), impersonateUser: 'someone' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

describe('reuseConnections', () => {
  it('reads the CA, client certificate and key once per FILE_TTL_MS; a file replaced on disk is read after it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certrotator-reuse-'));
    try {
      let t = 1_000;
      const kc = reuseConnections(kubeconfigWithFiles(dir), () => t);
      const apply = (): Https => {
        const o: Https = { headers: { Accept: 'application/json' } };
        (kc as unknown as { applyHTTPSOptions(o: Https): void }).applyHTTPSOptions(o);
        return o;
      };
      const first = apply();
      expect(String(first.cert)).toBe('cert one');
      expect(first.headers).toEqual({ Accept: 'application/json', 'Impersonate-User': 'someone' });
      writeFileSync(join(dir, 'cert'), 'cert two');
      t += FILE_TTL_MS - 1;
      const second = apply();
      expect(String(second.cert)).toBe('cert one');
      // Each request its own headers object: adding Authorization to one does not reach the next.
      second.headers!.Authorization = 'Bearer x';
      expect(apply().headers).toEqual({ Accept: 'application/json', 'Impersonate-User': 'someone' });
      t += 1;
      expect(String(apply().cert)).toBe('cert two');
      expect(String(apply().ca)).toBe('ca one');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the same TLS identity gets the same pool; another client certificate another pool', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certrotator-reuse-'));
    try {
      const kc = reuseConnections(kubeconfigWithFiles(dir));
      const dispatch = (kc as unknown as { createDispatcher(c: unknown, o: Record<string, unknown>): unknown }).createDispatcher.bind(kc);
      const cluster = kc.getCurrentCluster();
      const a = dispatch(cluster, { ca: Buffer.from('ca'), cert: Buffer.from('one'), key: Buffer.from('k') });
      expect(dispatch(cluster, { ca: Buffer.from('ca'), cert: Buffer.from('one'), key: Buffer.from('k') })).toBe(a);
      expect(dispatch(cluster, { ca: Buffer.from('ca'), cert: Buffer.from('two'), key: Buffer.from('k') })).not.toBe(a);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
