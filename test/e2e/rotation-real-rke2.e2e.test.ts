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
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RealRke2Cluster, type RealNode } from '../realnode/cluster.js';
import { tls } from '../realnode/rke2-layout.js';
import { waitFor } from './support/controller.js';
import { getTls, leases, snapshotDir } from './support/real-checks.js';
import { apiReadyz, embeddedAdminSerial, etcdHealth } from './support/rke2-oracles.js';
import { diskSerial, diskSerials, etcdTraffic, expectLeasesRenewed, expectServedIsDisk, realSuite, type ServedFile } from './support/real-suite.js';
import { condition, intervals, nodeRotations, pemSerial, run, servedPem } from './support/rotation.js';

const suite = realSuite<RealNode, RealRke2Cluster>('real-rke2', (workDir) =>
  RealRke2Cluster.start({ workDir, binDir: process.env.CERTROTATOR_BIN_DIR!, servers: 3, workers: 2 }),
);
const cluster = (): RealRke2Cluster => suite.cluster();

// ---- oracles ---------------------------------------------------------------

// Every member, asked with the first server's etcd client pair as it was when the run started.
function newTraffic(prefix: string) {
  const first = cluster().servers[0]!;
  const pair = { cert: tls(first.dataDir, 'etcd/client.crt'), key: tls(first.dataDir, 'etcd/client.key') };
  return etcdTraffic(prefix, cluster().kubeconfig, cluster().servers, pair, tls(first.dataDir, 'etcd/server-ca.crt'));
}

// What each server serves where, by upstream's flags (test/realnode/rke2-layout.ts):
// a hand-written table, not the catalog's.
const SERVED: readonly ServedFile<RealNode>[] = [
  { port: 6443, file: (n) => tls(n.dataDir, 'serving-kube-apiserver.crt') },
  { port: 2379, file: (n) => tls(n.dataDir, 'etcd/server-client.crt') },
  { port: 2380, file: (n) => tls(n.dataDir, 'etcd/peer-server-client.crt') },
];

async function rotate(name: string, spec: Record<string, unknown>, expectChanged: (key: string) => boolean): Promise<void> {
  const servers = cluster().servers;
  const beforeDisk = await diskSerials(servers, SERVED);
  const beforeLeases = await leases(cluster().kubeconfig);
  const rotation = await suite.run(name, { distribution: 'rke2', ...spec, strategy: { nodeTimeout: '5m' } }, { condition: 'Ready', timeout: '900s', traffic: newTraffic(name) });
  expect(rotation.status.phase).toBe('Succeeded');
  // With the NEW pairs on each node: etcd members healthy, API servers ready.
  for (const n of servers) {
    for (const via of servers) {
      expect(await etcdHealth(n, via)).toEqual({ status: 200, body: expect.stringContaining('"health":"true"') });
      expect((await apiReadyz(n, via)).status).toBe(200);
    }
  }
  await expectServedIsDisk(servers, SERVED, beforeDisk, expectChanged);
  // The restarted controller-manager and scheduler hold their leases again.
  await expectLeasesRenewed(cluster().kubeconfig, beforeLeases, rotation, true);
}

describe('RKE2 with real etcd, kube-apiserver, kube-controller-manager and kube-scheduler', () => {
  test('the agents verified on the real components before any rotation (probe and serial read-only check)', async () => {
    for (const n of cluster().servers) {
      expect((await apiReadyz(n, n)).status).toBe(200);
      // Anonymous requests are refused, as on a real RKE2 server: a probe without a client certificate cannot pass.
      expect((await getTls(`https://${n.ip}:6443/readyz`, undefined, tls(n.dataDir, 'server-ca.crt'))).status).toBe(401);
      // etcd metrics and the controller-manager/scheduler listen on the node's loopback only.
      expect((await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${n.ip}:2381/health`])).stdout).not.toBe('200');
      const inside = await cluster().exec(n, ['curl', '-s', '--max-time', '3', 'http://127.0.0.1:2381/health']);
      expect(inside.stdout).toContain('"health":"true"');
    }
  });

  test('scope All: every server then every worker, the cluster keeps serving; rke2.yaml embeds the new admin pair', async () => {
    const before = await Promise.all(cluster().servers.map(embeddedAdminSerial));
    await rotate('real-all', { scope: 'All' }, () => true);
    // rke2 rewrites /etc/rancher/rke2/rke2.yaml at start (k3s pkg/server/server.go writeKubeConfig); the agent checked it too.
    for (const [i, n] of cluster().servers.entries()) {
      const now = await embeddedAdminSerial(n);
      expect(`${n.name} ${now}`).toBe(`${n.name} ${await diskSerial(tls(n.dataDir, 'client-admin.crt'))}`);
      expect(`${n.name} ${now}`).not.toBe(`${n.name} ${before[i]}`);
      expect(readFileSync(cluster().agents.get(n.name)!.log, 'utf8')).not.toMatch(/does not embed the new/);
    }
  }, 1_000_000);

  test('service etcd: new etcd serving and peer certificates, the apiserver certificate unchanged', async () => {
    await rotate('real-etcd', { scope: 'Service', service: 'etcd' }, (key) => !key.endsWith(':6443'));
  }, 1_000_000);

  test('a renewal the real components reject is caught: etcd peer certificate without its SANs is rolled back byte for byte', async () => {
    const first = cluster().servers[0]!;
    const etcdDir = join(first.dataDir, 'server', 'tls', 'etcd');
    const before = snapshotDir(etcdDir);
    const traffic = newTraffic('real-fault');
    await cluster().stopAgents();
    await cluster().startAgents({ CERTROTATOR_TEST_FAULT: 'drop-san:etcd-peer-server-client' });
    const rotation = await suite.run('real-fault', { distribution: 'rke2', scope: 'Service', service: 'etcd', strategy: { nodeTimeout: '180s', onFailure: 'Rollback' } }, {
      condition: 'Stalled',
      timeout: '400s',
      traffic,
      // The injected fault cuts the first member off from its peers (they refuse a
      // peer certificate without their IP), so writes the load balancer hands to
      // that node's kube-apiserver wait on an etcd without quorum until the rollback
      // restarts it; a TCP load balancer cannot see that. The share of all writes
      // that fail therefore depends on how long that window is against the whole
      // run (93.6% acknowledged in one CI run, 14 of 219), which says nothing about
      // certrotator. What does is asserted below, per window: none fails outside it,
      // and inside it the other two servers keep taking writes.
      availability: 'own',
    });
    const stalled = condition(rotation, 'Stalled');
    process.stderr.write(`real-fault: Stalled: ${stalled?.message}\n`);
    expect(stalled.status).toBe('True');
    expect(stalled.message).toContain(first.name);
    expect(stalled.message).toMatch(/verif/i);
    expect(rotation.status.nodes.map((n: any) => [n.name, n.phase])).toEqual([[first.name, 'RolledBack']]);
    // Caught as soon as etcd served the refused certificate, not when the verification
    // budget (70% of the 180 s nodeTimeout) ran out: waiting could not have changed it.
    const [failed] = (await nodeRotations('real-fault', cluster().kubeconfig)).filter((nr) => nr.spec.nodeName === first.name);
    const [{ start, end }] = intervals([failed!]);
    process.stderr.write(`real-fault: ${first.name} picked up to rolled back in ${(end - start) / 1000} s\n`);
    expect((end - start) / 1000).toBeLessThan(0.7 * 180);
    // The writes that failed were sent while the first node was installing, verifying or rolling back.
    expect(traffic.failedAt.filter((t) => t < start || t > end)).toEqual([]);
    // Round robin over three API servers, one cut off: about one write in three
    // fails inside the window. Half is the bound; more means the cluster, not one
    // member, stopped taking writes.
    const inside = traffic.availabilityBetween(start, end);
    process.stderr.write(`real-fault: ${(inside * 100).toFixed(1)}% of the writes sent in that window acknowledged\n`);
    expect(inside).toBeGreaterThanOrEqual(0.5);
    // Nothing was started after the failed node: it is the only one with a NodeRotation, and the rest are counted Pending.
    expect((await nodeRotations('real-fault', cluster().kubeconfig)).map((nr) => nr.spec.nodeName)).toEqual([first.name]);
    expect(rotation.status.counts.reduce((sum: number, c: any) => sum + c.pending, 0)).toBe(cluster().servers.length - 1);
    // Byte for byte what it was, and the member serves it again, healthy.
    expect(snapshotDir(etcdDir)).toEqual(before);
    await waitFor('rolled-back etcd member healthy', async () => (await etcdHealth(first, first).catch(() => ({ status: 0, body: '' }))).status === 200, 60_000);
    expect(await pemSerial(await servedPem(first.ip, 2380))).toBe(await diskSerial(join(etcdDir, 'peer-server-client.crt')));
  }, 1_000_000);
});
