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
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealRke2Cluster, type RealNode } from '../realnode/cluster.js';
import { tls } from '../realnode/rke2-layout.js';
import { ControllerProcess, waitFor } from './support/controller.js';
import { getTls, leases, leasesRenewedSince, snapshotDir, Traffic } from './support/real-checks.js';
import { applyRotation, condition, getJson, intervals, nodeRotations, pemSerial, run, servedPem, waitRotationCondition } from './support/rotation.js';

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

const etcdHealth = (n: RealNode, via: RealNode) =>
  getTls(`https://${n.ip}:2379/health`, { cert: tls(via.dataDir, 'etcd/client.crt'), key: tls(via.dataDir, 'etcd/client.key') }, tls(via.dataDir, 'etcd/server-ca.crt'));
const apiReadyz = (n: RealNode, via: RealNode) =>
  getTls(`https://${n.ip}:6443/readyz`, { cert: tls(via.dataDir, 'client-admin.crt'), key: tls(via.dataDir, 'client-admin.key') }, tls(via.dataDir, 'server-ca.crt'));

// Every member, asked with the first server's etcd client pair as it was when the
// run started (read once: a pair read mid-install could be half old, half new).
function newTraffic(prefix: string): Traffic {
  const first = cluster!.servers[0]!;
  const pair = { cert: readFileSync(tls(first.dataDir, 'etcd/client.crt')), key: readFileSync(tls(first.dataDir, 'etcd/client.key')) };
  const ca = readFileSync(tls(first.dataDir, 'etcd/server-ca.crt'));
  return new Traffic(prefix, cluster!.kubeconfig, cluster!.servers.map((n) => () => getTls(`https://${n.ip}:2379/health`, pair, ca)));
}

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

const debug = () => `${controller?.debug() ?? ''}\n${(cluster?.nodes ?? []).map((n) => `--- ${n.name}\n${readFileSync(cluster!.agents.get(n.name)!.log, 'utf8').split('\n').slice(-6).join('\n')}`).join('\n')}`;

async function rotate(name: string, spec: Record<string, unknown>, expectChanged: (key: string) => boolean): Promise<void> {
  const beforeDisk = await diskSerials();
  const beforeLeases = await leases(cluster!.kubeconfig);
  const traffic = newTraffic(name);
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
    return leasesRenewedSince(beforeLeases, await leases(cluster!.kubeconfig), lastServerDone);
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

  test('scope All: every server then every worker, the cluster keeps serving; rke2.yaml embeds the new admin pair', async () => {
    const embedded = async (n: RealNode) => {
      const k = parseYaml(readFileSync(n.config.adminKubeconfig, 'utf8')) as { users: { user: Record<string, string> }[] };
      return pemSerial(Buffer.from(k.users[0]!.user['client-certificate-data']!, 'base64').toString('utf8'));
    };
    const before = await Promise.all(cluster!.servers.map(embedded));
    await rotate('real-all', { scope: 'All' }, () => true);
    // rke2 rewrites /etc/rancher/rke2/rke2.yaml at start (k3s pkg/server/server.go writeKubeConfig); the agent checked it too.
    for (const [i, n] of cluster!.servers.entries()) {
      const now = await embedded(n);
      expect(`${n.name} ${now}`).toBe(`${n.name} ${await diskSerial(tls(n.dataDir, 'client-admin.crt'))}`);
      expect(`${n.name} ${now}`).not.toBe(`${n.name} ${before[i]}`);
      expect(readFileSync(cluster!.agents.get(n.name)!.log, 'utf8')).not.toMatch(/does not embed the new/);
    }
  }, 1_000_000);

  test('service etcd: new etcd serving and peer certificates, the apiserver certificate unchanged', async () => {
    await rotate('real-etcd', { scope: 'Service', service: 'etcd' }, (key) => !key.endsWith(':6443'));
  }, 1_000_000);

  test('a renewal the real components reject is caught: etcd peer certificate without its SANs is rolled back byte for byte', async () => {
    const first = cluster!.servers[0]!;
    const etcdDir = join(first.dataDir, 'server', 'tls', 'etcd');
    const before = snapshotDir(etcdDir);
    await cluster!.stopAgents();
    await cluster!.startAgents({ CERTROTATOR_TEST_FAULT: 'drop-san:etcd-peer-server-client' });
    const traffic = newTraffic('real-fault');
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
    // Caught as soon as etcd served the refused certificate, not when the verification
    // budget (70% of the 180 s nodeTimeout) ran out: waiting could not have changed it.
    const [failed] = (await nodeRotations('real-fault', cluster!.kubeconfig)).filter((nr) => nr.spec.nodeName === first.name);
    const [{ start, end }] = intervals([failed!]);
    process.stderr.write(`real-fault: ${first.name} picked up to rolled back in ${(end - start) / 1000} s\n`);
    expect((end - start) / 1000).toBeLessThan(0.7 * 180);
    // Nothing was started after the failed node.
    for (const n of rotation.status.nodes.filter((x: any) => x.name !== first.name)) expect(n.phase).toBe('Pending');
    // Byte for byte what it was, and the member serves it again, healthy.
    expect(snapshotDir(etcdDir)).toEqual(before);
    await waitFor('rolled-back etcd member healthy', async () => (await etcdHealth(first, first).catch(() => ({ status: 0, body: '' }))).status === 200, 60_000);
    expect(await pemSerial(await servedPem(first.ip, 2380))).toBe(await diskSerial(join(etcdDir, 'peer-server-client.crt')));
    // The cluster kept quorum and served throughout.
    expect(traffic.quorumLost).toBe(0);
    expect(traffic.availability()).toBeGreaterThanOrEqual(0.99);
    expect(await traffic.unreadable()).toEqual([]);
  }, 1_000_000);
});
