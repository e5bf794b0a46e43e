// The agent's certificate inventory on a real host tree: every certificate of
// the node in /metrics with the notAfter openssl reads from the file, an
// expired file flagged, an unreadable one counted, a file that went away
// dropped from the next scan, and nothing on the host touched.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createMetrics } from '../observability/metrics.js';
import { rke2Server, writeAgedClientAdmin, type FixtureNode } from '../simulation/fixtures.js';
import { opensslServedPem, runCli } from '../simulation/harness.js';
import { runIp } from '../simulation/loopback.js';
import { SimulatedNode } from '../simulation/node.js';
import { changedPaths, snapshotTree } from '../simulation/tree.js';
import { NodeInventory } from './inventory.js';

const S = 'var/lib/rancher/rke2/server/tls';
let work: string;
let server: FixtureNode;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-inventory-'));
  server = await rke2Server(join(work, 'server'), { nodeName: 'server-1', nodeIP: '127.0.9.9' });
  // client-admin as rke2 issued it 400 days ago: 35 days expired.
  await writeAgedClientAdmin(server.root, 400);
  await fs.writeFile(join(server.root, S, 'client-supervisor.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n');
}, 60_000);
afterAll(() => fs.rm(work, { recursive: true, force: true }));

/** Every sample of one metric in the Prometheus text, by its path label. */
function samples(text: string, metric: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${metric}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const path = /path="([^"]*)"/.exec(m[1]!)?.[1];
    if (path) out.set(path, Number(m[2]));
  }
  return out;
}

const opensslNotAfter = (file: string): number =>
  Math.floor(Date.parse(execFileSync('openssl', ['x509', '-noout', '-enddate', '-in', file], { encoding: 'utf8' }).trim().replace(/^notAfter=/, '')) / 1000);

describe('NodeInventory', () => {
  it('exports every certificate file of the node, flags the expired one, counts the unreadable one, and changes nothing', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const before = await snapshotTree(server.root);
    const inventory = new NodeInventory({ nodeName: 'server-1', distribution: 'rke2', hostRoot: server.root, metrics, log: pino({ level: 'silent' }) });
    const scan = await inventory.scan();
    expect(changedPaths(before, await snapshotTree(server.root))).toEqual([]);
    const text = await metrics.registry.metrics();
    const notAfter = samples(text, 'certrotator_certificate_not_after_timestamp_seconds');
    const expired = samples(text, 'certrotator_certificate_expired');
    const errors = samples(text, 'certrotator_certificate_read_errors_total');
    // The same files `node check` lists: the server's leaves, its CAs and the agent files of the server.
    expect(notAfter.size).toBe(scan.files - scan.errors);
    expect(notAfter.size).toBeGreaterThan(15);
    for (const f of ['serving-kube-apiserver.crt', 'client-admin.crt', 'etcd/server-client.crt', 'server-ca.crt']) {
      expect([f, notAfter.get(`/${S}/${f}`)]).toEqual([f, opensslNotAfter(join(server.root, S, f))]);
    }
    expect(expired.get(`/${S}/client-admin.crt`)).toBe(1);
    expect([...expired].filter(([, v]) => v === 1).map(([p]) => p)).toEqual([`/${S}/client-admin.crt`]);
    expect(errors.get(`/${S}/client-supervisor.crt`)).toBe(1);
    expect(scan).toMatchObject({ expired: 1, errors: 1, earliest: { path: `/${S}/client-admin.crt` } });
    expect(text).toMatch(/certrotator_certificate_not_after_timestamp_seconds\{node="server-1",service="api-server",path="\/var\/lib\/rancher\/rke2\/server\/tls\/serving-kube-apiserver\.crt"\} \d+/);
    expect(text).not.toContain('PRIVATE KEY');

    // A file that goes away leaves the next scan's series (and is an error there, not a stale notAfter).
    // As `node check` reports it, a missing file is an error of its whole service: the service's other file goes too.
    const copy = join(work, 'copy');
    await fs.cp(server.root, copy, { recursive: true });
    await fs.rm(join(copy, S, 'serving-kube-apiserver.crt'));
    const again = new NodeInventory({ nodeName: 'server-1', distribution: 'rke2', hostRoot: copy, metrics, log: pino({ level: 'silent' }) });
    await again.scan();
    const after = samples(await metrics.registry.metrics(), 'certrotator_certificate_not_after_timestamp_seconds');
    expect(after.has(`/${S}/serving-kube-apiserver.crt`)).toBe(false);
    expect([...notAfter.keys()].filter((p) => !after.has(p)).sort()).toEqual([`/${S}/client-kube-apiserver.crt`, `/${S}/serving-kube-apiserver.crt`]);
    expect(await metrics.registry.metrics()).toMatch(/^certrotator_certificate_read_errors_total\{node="server-1",service="api-server",path=""\} 1$/m);
  }, 60_000);

  it('puts one Warning Event on its Node per certificate and threshold, not again at the next scan', async () => {
    const said: { obj: { kind: string; metadata?: { name?: string; uid?: string } }; reason: string; message: string }[] = [];
    const inventory = new NodeInventory({
      nodeName: 'server-1',
      distribution: 'rke2',
      hostRoot: server.root,
      metrics: createMetrics({ defaultMetrics: false }),
      log: pino({ level: 'silent' }),
      events: { warning: (obj, reason, message) => said.push({ obj, reason, message }) },
    });
    await inventory.scan();
    await inventory.scan();
    // The fixture's one file past a threshold: client-admin, expired 35 days ago.
    expect(said).toEqual([
      { obj: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'server-1', uid: 'server-1' } }, reason: 'CertificateExpired', message: expect.stringMatching(/^\/var\/lib\/rancher\/rke2\/server\/tls\/client-admin\.crt \(service admin\) expired on /) },
    ]);
  });

  it('reads what each endpoint really serves: its notAfter as openssl sees it, and stale after a renewal without a restart', async () => {
    const root = join(work, 'served');
    await fs.cp(server.root, root, { recursive: true });
    const address = runIp(214, 1);
    const sim = new SimulatedNode({ ...server, root }, { address });
    await sim.start();
    try {
      const metrics = createMetrics({ defaultMetrics: false });
      const inventory = new NodeInventory({ nodeName: 'server-1', distribution: 'rke2', hostRoot: root, metrics, log: pino({ level: 'silent' }), addresses: { loopback: address, nodeIPs: [address] } });
      const served = async () => {
        const text = await metrics.registry.metrics();
        const byEndpoint = (metric: string) =>
          new Map([...text.matchAll(new RegExp(`^${metric}\\{node="server-1",service="([^"]+)",endpoint="([^"]+)"\\} (\\S+)$`, 'gm'))].map((m) => [`${m[1]} ${m[2]}`, Number(m[3])]));
        return { notAfter: byEndpoint('certrotator_certificate_not_after_timestamp_seconds'), stale: byEndpoint('certrotator_certificate_served_stale') };
      };
      const ports = { 'api-server': 6443, etcd: 2379, 'rke2-server': 9345, kubelet: 10250, 'controller-manager': 10257, scheduler: 10259 };
      const first = await inventory.scan();
      expect(first.stale).toEqual([]);
      const before = await served();
      // Every endpoint of the server, each with the notAfter openssl reads from what it serves.
      expect([...before.notAfter.keys()].sort()).toEqual([...Object.entries(ports).map(([svc, port]) => `${svc} ${address}:${port}`), `etcd ${address}:2380`].sort());
      for (const [key, t] of before.notAfter) {
        const port = Number(key.split(':').pop());
        const pem = await opensslServedPem(address, port);
        const end = execFileSync('openssl', ['x509', '-noout', '-enddate'], { input: pem, encoding: 'utf8' }).trim().replace(/^notAfter=/, '');
        expect([key, t]).toEqual([key, Math.floor(Date.parse(end) / 1000)]);
      }
      expect([...before.stale.values()].every((v) => v === 0)).toBe(true);

      // Renewed on disk, not restarted: kube-apiserver still serves the old certificate.
      const r = await runCli(['node', 'rotate', '--host-root', root, '--distribution', 'rke2', '--service', 'api-server', '--no-restart']);
      expect(r.code).toBe(0);
      const second = await inventory.scan();
      expect(second.stale).toEqual([`api-server ${address}:6443`]);
      const after = await served();
      expect(after.stale.get(`api-server ${address}:6443`)).toBe(1);
      expect([...after.stale].filter(([, v]) => v === 1).map(([k]) => k)).toEqual([`api-server ${address}:6443`]);

      // The restart the rotation left to a person: then disk and endpoint agree again.
      const res = await fetch(`${sim.controlUrl}/restart`, { method: 'POST' });
      expect(res.status).toBe(200);
      expect((await inventory.scan()).stale).toEqual([]);
      expect((await served()).stale.get(`api-server ${address}:6443`)).toBe(0);
    } finally {
      await sim.stop();
    }
  }, 60_000);
});
