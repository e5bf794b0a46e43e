import { afterEach, describe, expect, it } from '@jest/globals';
import { request } from 'node:http';
import { createMetrics } from './metrics.js';
import { startObservabilityServer, type ObservabilityServer } from './server.js';

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

let srv: ObservabilityServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

describe('observability server', () => {
  it('/healthz is ok while the loop runs; verbose lists the checks', async () => {
    srv = await startObservabilityServer({ port: 0, host: '127.0.0.1' });
    expect(srv.port).toBeGreaterThan(0);
    await expect(get(srv.port, '/healthz')).resolves.toMatchObject({ status: 200, body: 'ok\n' });
    const verbose = await get(srv.port, '/healthz?verbose');
    expect(verbose.status).toBe(200);
    expect(verbose.body).toContain('[+]ping ok');
    expect(verbose.body).toContain('[+]eventloop ok');
  });

  it('/healthz fails after the event loop was blocked longer than the limit', async () => {
    srv = await startObservabilityServer({ port: 0, host: '127.0.0.1', maxEventLoopStallMs: 300, stallWindowMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    const until = Date.now() + 700;
    while (Date.now() < until) {
      /* block the event loop */
    }
    // The heartbeat notices the stall once the loop runs again (timers run late on a loaded machine).
    for (const deadline = Date.now() + 5000; srv.recentStallMs() <= 300 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
    expect(srv.recentStallMs()).toBeGreaterThan(300);
    const res = await get(srv.port, '/healthz');
    expect(res.status).toBe(503);
    expect(res.body).toMatch(/\[-\]eventloop failed: event loop stalled for \d+ ms \(limit 300 ms\)/);
  });

  it('/readyz waits for informers and caller checks, naming what fails', async () => {
    let synced = false;
    let leaderState: boolean | string = 'lease not observed yet';
    srv = await startObservabilityServer({
      port: 0,
      host: '127.0.0.1',
      informers: [
        { name: 'nodes', hasSynced: () => true },
        { name: 'certificaterotations', hasSynced: () => synced },
      ],
      readiness: [{ name: 'leader-election', check: () => leaderState }],
    });
    const notReady = await get(srv.port, '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body).toContain('[+]informer-sync:nodes ok');
    expect(notReady.body).toContain('[-]informer-sync:certificaterotations failed: not synced');
    expect(notReady.body).toContain('[-]leader-election failed: lease not observed yet');
    synced = true;
    leaderState = true;
    await expect(get(srv.port, '/readyz')).resolves.toMatchObject({ status: 200, body: 'ok\n' });
  });

  it('a throwing check fails that check only', async () => {
    srv = await startObservabilityServer({
      port: 0,
      host: '127.0.0.1',
      readiness: [{ name: 'boom', check: () => { throw new Error('exploded'); } }],
    });
    const res = await get(srv.port, '/readyz');
    expect(res.status).toBe(503);
    expect(res.body).toContain('[-]boom failed: exploded');
    await expect(get(srv.port, '/healthz')).resolves.toMatchObject({ status: 200 });
  });

  it('/metrics serves the registry in Prometheus text format', async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.certificateNotAfter.set({ node: 'rke2-server-1', service: 'kube-apiserver' }, 1_900_000_000);
    m.rotationsTotal.inc({ result: 'succeeded' });
    srv = await startObservabilityServer({ port: 0, host: '127.0.0.1', registry: m.registry });
    const res = await get(srv.port, '/metrics');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.body).toContain('certrotator_certificate_not_after_timestamp_seconds{node="rke2-server-1",service="kube-apiserver"} 1900000000');
    expect(res.body).toContain('certrotator_rotations_total{result="succeeded"} 1');
  });

  it('answers 404 for unknown paths and 405 for writes', async () => {
    srv = await startObservabilityServer({ port: 0, host: '127.0.0.1' });
    await expect(get(srv.port, '/nope')).resolves.toMatchObject({ status: 404 });
    await expect(get(srv.port, '/metrics')).resolves.toMatchObject({ status: 404 });
    await expect(get(srv.port, '/healthz', 'POST')).resolves.toMatchObject({ status: 405 });
  });
});
