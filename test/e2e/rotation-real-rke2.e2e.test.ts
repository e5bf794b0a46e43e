// Rotations on an RKE2 cluster whose control plane is real (test/realnode): three
// servers, each a network namespace running the real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler from its own RKE2 tree with RKE2's
// flags, and two workers. The certrotator controller and agents talk to that
// cluster's own API servers through a load balancer; each agent runs inside its
// node with host root `/` and restarts through the node's `systemctl`.
//
// The oracles are the real components and openssl, not our catalog: after each
// rotation every etcd member answers /health to the NEW etcd client pair, every
// kube-apiserver answers /readyz to the NEW admin pair, the controller-manager
// and scheduler leases are renewed by restarted processes, and every endpoint
// serves the serial on disk. A writer creates a ConfigMap every 200 ms through
// the load balancer throughout, and etcd's quorum is watched.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CoreV1Api, CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealRke2Cluster, type RealNode } from '../realnode/cluster.js';
import { tls } from '../realnode/rke2-layout.js';
import { ControllerProcess, waitFor } from './support/controller.js';
import { applyRotation, condition, getJson, pemSerial, run, servedPem, waitRotationCondition } from './support/rotation.js';

let work: string;
let cluster: RealRke2Cluster | undefined;
let controller: ControllerProcess | undefined;
const timings: Record<string, number> = {};

beforeAll(async () => {
  const t0 = Date.now();
  work = mkdtempSync(join(tmpdir(), 'certrotator-real-rke2-'));
  cluster = await RealRke2Cluster.start({ workDir: work, binDir: process.env.CERTROTATOR_BIN_DIR!, servers: 3, workers: 2 });
  await cluster.startAgents();
  controller = new ControllerProcess('real-rke2', { leaseName: 'certrotator-real-rke2', extraArgs: [`--kubeconfig=${cluster.kubeconfig}`] });
  await waitFor('controller leading', () => controller!.leading(), 60_000, () => controller!.debug());
  timings.setup = (Date.now() - t0) / 1000;
}, 420_000);

afterAll(async () => {
  await controller?.stop();
  try {
    for (const n of cluster?.nodes ?? []) {
      const log = cluster!.agents.get(n.name)?.log;
      if (log) expect(readFileSync(log, 'utf8')).not.toContain('PRIVATE KEY');
    }
    if (controller) expect(controller.debug()).not.toContain('PRIVATE KEY');
  } finally {
    await cluster?.stop();
    process.stderr.write(`real RKE2 suite timings (s): ${JSON.stringify(timings)}\n`);
    rmSync(work, { recursive: true, force: true });
  }
}, 180_000);

// ---- oracles ---------------------------------------------------------------

function getTls(url: string, pair: { cert: string; key: string } | undefined, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'GET',
      timeout: 5000,
      ca: readFileSync(ca),
      ...(pair ? { cert: readFileSync(pair.cert), key: readFileSync(pair.key) } : {}),
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const etcdHealth = (n: RealNode, via: RealNode) =>
  getTls(`https://${n.ip}:2379/health`, { cert: tls(via.dataDir, 'etcd/client.crt'), key: tls(via.dataDir, 'etcd/client.key') }, tls(via.dataDir, 'etcd/server-ca.crt'));
const apiReadyz = (n: RealNode, via: RealNode) =>
  getTls(`https://${n.ip}:6443/readyz`, { cert: tls(via.dataDir, 'client-admin.crt'), key: tls(via.dataDir, 'client-admin.key') }, tls(via.dataDir, 'server-ca.crt'));

async function diskSerial(file: string): Promise<string> {
  return pemSerial(readFileSync(file, 'utf8'));
}

// What each server serves where, by upstream's flags (test/realnode/rke2-layout.ts):
// a hand-written table, not the catalog's.
const SERVED: readonly { port: number; file: (n: RealNode) => string }[] = [
  { port: 6443, file: (n) => tls(n.dataDir, 'serving-kube-apiserver.crt') },
  { port: 2379, file: (n) => tls(n.dataDir, 'etcd/server-client.crt') },
  { port: 2380, file: (n) => tls(n.dataDir, 'etcd/peer-server-client.crt') },
];

async function servedSerials(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const n of cluster!.servers) for (const s of SERVED) out.set(`${n.name}:${s.port}`, await pemSerial(await servedPem(n.ip, s.port)));
  return out;
}

async function diskSerials(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const n of cluster!.servers) for (const s of SERVED) out.set(`${n.name}:${s.port}`, await diskSerial(s.file(n)));
  return out;
}

interface Lease {
  holder: string;
  renew: number;
}

async function leases(): Promise<Record<string, Lease>> {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster!.kubeconfig);
  const api = kc.makeApiClient(CoordinationV1Api);
  const out: Record<string, Lease> = {};
  for (const name of ['kube-controller-manager', 'kube-scheduler']) {
    const l = await api.readNamespacedLease({ namespace: 'kube-system', name });
    out[name] = { holder: l.spec?.holderIdentity ?? '', renew: new Date(l.spec?.renewTime ?? 0).getTime() };
  }
  return out;
}

// A ConfigMap every 200 ms through the load balancer; etcd members' health every 500 ms.
class Traffic {
  private readonly core: CoreV1Api;
  private stopped = false;
  private loops: Promise<void>[] = [];
  attempted = 0;
  acked: string[] = [];
  failures: string[] = [];
  quorumLost = 0;
  minHealthy = Infinity;
  samples = 0;

  constructor(private readonly prefix: string) {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster!.kubeconfig);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  start(): void {
    this.loops = [this.writeLoop(), this.quorumLoop()];
  }

  private async writeLoop(): Promise<void> {
    const inflight: Promise<void>[] = [];
    for (let i = 0; !this.stopped; i++) {
      const name = `${this.prefix}-${i}`;
      this.attempted++;
      inflight.push(
        Promise.race([
          this.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name }, data: { i: String(i) } } }),
          new Promise((_, reject) => setTimeout(() => reject(new Error('no answer in 10 s')), 10_000)),
        ]).then(
          () => void this.acked.push(name),
          (e: Error) => void this.failures.push(`${name}: ${e.message.slice(0, 120)}`),
        ),
      );
      await new Promise((r) => setTimeout(r, 200));
    }
    await Promise.all(inflight);
  }

  private async quorumLoop(): Promise<void> {
    const servers = cluster!.servers;
    while (!this.stopped) {
      const healthy = (
        await Promise.all(servers.map((n) => etcdHealth(n, servers[0]!).then((r) => r.status === 200 && r.body.includes('"health":"true"'), () => false)))
      ).filter(Boolean).length;
      this.samples++;
      this.minHealthy = Math.min(this.minHealthy, healthy);
      if (healthy < 2) this.quorumLost++;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  availability(): number {
    return this.acked.length / this.attempted;
  }

  async unreadable(): Promise<string[]> {
    const list = await this.core.listNamespacedConfigMap({ namespace: 'default' });
    const present = new Set(list.items.map((c) => c.metadata?.name));
    return this.acked.filter((n) => !present.has(n));
  }

  summary(): string {
    return `writes ${this.acked.length}/${this.attempted} acknowledged (${(this.availability() * 100).toFixed(2)}%), etcd healthy members min ${this.minHealthy}/3 over ${this.samples} samples; failures: ${this.failures.slice(0, 5).join(' | ')}`;
  }
}

const debug = () => `${controller?.debug() ?? ''}\n${(cluster?.nodes ?? []).map((n) => `--- ${n.name}\n${readFileSync(cluster!.agents.get(n.name)!.log, 'utf8').split('\n').slice(-6).join('\n')}`).join('\n')}`;

async function rotate(name: string, spec: Record<string, unknown>, expectChanged: (key: string) => boolean): Promise<void> {
  const beforeDisk = await diskSerials();
  const beforeLeases = await leases();
  const traffic = new Traffic(name);
  const t0 = Date.now();
  traffic.start();
  try {
    await applyRotation(name, { distribution: 'rke2', ...spec, strategy: { nodeTimeout: '5m' } }, cluster!.kubeconfig);
    await waitRotationCondition(name, 'Ready', { timeout: '900s', debug, kubeconfig: cluster!.kubeconfig });
  } finally {
    await traffic.stop();
  }
  timings[name] = (Date.now() - t0) / 1000;
  process.stderr.write(`${name}: ${timings[name]} s; ${traffic.summary()}\n`);
  expect(traffic.availability()).toBeGreaterThanOrEqual(0.99);
  expect(await traffic.unreadable()).toEqual([]);
  expect(traffic.quorumLost).toBe(0);

  const rotation = await getJson('certrotation', name, cluster!.kubeconfig);
  expect(rotation.status.phase).toBe('Succeeded');
  const servers = cluster!.servers;
  // With the NEW pairs on each node: etcd members healthy, API servers ready.
  for (const n of servers) {
    for (const via of servers) {
      expect(await etcdHealth(n, via)).toEqual({ status: 200, body: expect.stringContaining('"health":"true"') });
      expect((await apiReadyz(n, via)).status).toBe(200);
    }
  }
  // Every endpoint serves what is on disk; in scope it is new.
  const served = await servedSerials();
  const disk = await diskSerials();
  for (const [key, serial] of disk) {
    expect(`${key} ${served.get(key)}`).toBe(`${key} ${serial}`);
    if (expectChanged(key)) expect(`${key} ${serial}`).not.toBe(`${key} ${beforeDisk.get(key)}`);
    else expect(`${key} ${serial}`).toBe(`${key} ${beforeDisk.get(key)}`);
  }
  // The restarted controller-manager and scheduler hold their leases again.
  const lastServerDone = Math.max(...rotation.status.nodes.filter((n: any) => n.role !== 'worker').map((n: any) => new Date(n.finishedAt).getTime()));
  await waitFor('leases renewed by restarted processes', async () => {
    const now = await leases();
    return Object.entries(now).every(([k, l]) => l.holder !== beforeLeases[k]!.holder && l.renew > lastServerDone - 1000);
  }, 60_000, () => JSON.stringify({ beforeLeases, lastServerDone }));
}

describe('RKE2 with real etcd, kube-apiserver, kube-controller-manager and kube-scheduler', () => {
  test('the agents verified on the real components before any rotation (probe and serial read-only check)', async () => {
    for (const n of cluster!.servers) {
      expect((await apiReadyz(n, n)).status).toBe(200);
      // Anonymous requests are refused, as on a real RKE2 server: a probe without a client certificate cannot pass.
      expect((await getTls(`https://${n.ip}:6443/readyz`, undefined, tls(n.dataDir, 'server-ca.crt'))).status).toBe(401);
      // etcd metrics and the controller-manager/scheduler listen on the node's loopback only.
      expect((await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${n.ip}:2381/health`])).stdout).not.toBe('200');
      const inside = await cluster!.exec(n, ['curl', '-s', '--max-time', '3', 'http://127.0.0.1:2381/health']);
      expect(inside.stdout).toContain('"health":"true"');
    }
  });

  test('scope All: every server then every worker, the cluster keeps serving', async () => {
    await rotate('real-all', { scope: 'All' }, () => true);
  }, 1_000_000);

  test('service etcd: new etcd serving and peer certificates, the apiserver certificate unchanged', async () => {
    await rotate('real-etcd', { scope: 'Service', service: 'etcd' }, (key) => !key.endsWith(':6443'));
  }, 1_000_000);

  test('service api-server: new apiserver certificate, etcd unchanged', async () => {
    await rotate('real-api-server', { scope: 'Service', service: 'api-server' }, (key) => key.endsWith(':6443'));
  }, 1_000_000);

  test('a renewal the real components reject is caught: etcd peer certificate without its SANs is rolled back byte for byte', async () => {
    const first = cluster!.servers[0]!;
    const etcdDir = join(first.dataDir, 'server', 'tls', 'etcd');
    const before = snapshot(etcdDir);
    await cluster!.stopAgents();
    await cluster!.startAgents({ CERTROTATOR_TEST_FAULT: 'drop-san:etcd-peer-server-client' });
    const traffic = new Traffic('real-fault');
    const t0 = Date.now();
    traffic.start();
    try {
      await applyRotation('real-fault', { distribution: 'rke2', scope: 'Service', service: 'etcd', strategy: { nodeTimeout: '180s', onFailure: 'Rollback' } }, cluster!.kubeconfig);
      await waitRotationCondition('real-fault', 'Stalled', { timeout: '400s', debug, kubeconfig: cluster!.kubeconfig });
    } finally {
      await traffic.stop();
    }
    timings['real-fault'] = (Date.now() - t0) / 1000;
    process.stderr.write(`real-fault: ${timings['real-fault']} s; ${traffic.summary()}\n`);
    const rotation = await getJson('certrotation', 'real-fault', cluster!.kubeconfig);
    const stalled = condition(rotation, 'Stalled');
    process.stderr.write(`real-fault: Stalled: ${stalled?.message}\n`);
    expect(stalled.status).toBe('True');
    expect(stalled.message).toContain(first.name);
    expect(stalled.message).toMatch(/verif/i);
    expect(rotation.status.nodes.find((n: any) => n.name === first.name).phase).toBe('RolledBack');
    // Nothing was started after the failed node.
    for (const n of rotation.status.nodes.filter((x: any) => x.name !== first.name)) expect(n.phase).toBe('Pending');
    // Byte for byte what it was, and the member serves it again, healthy.
    expect(snapshot(etcdDir)).toEqual(before);
    await waitFor('rolled-back etcd member healthy', async () => (await etcdHealth(first, first).catch(() => ({ status: 0, body: '' }))).status === 200, 60_000);
    expect(await pemSerial(await servedPem(first.ip, 2380))).toBe(await diskSerial(join(etcdDir, 'peer-server-client.crt')));
    // The cluster kept quorum and served throughout.
    expect(traffic.quorumLost).toBe(0);
    expect(traffic.availability()).toBeGreaterThanOrEqual(0.99);
    expect(await traffic.unreadable()).toEqual([]);
  }, 1_000_000);
});

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir)) out[f] = createHash('sha256').update(readFileSync(join(dir, f))).digest('hex');
  return out;
}
