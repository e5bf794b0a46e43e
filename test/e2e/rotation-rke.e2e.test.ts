// Issue 4 on RKE: a second control plane whose kwok nodes are RKE nodes (2
// etcd+controlplane servers, 2 workers on 127.30.x.y), the controller as a
// child process, and real agents over simulated RKE host trees.
//
// This cluster has no kube-system/full-cluster-state Secret, so the controller
// has no RKE state to issue a per-run bundle from (spec.bundleSecretRef) and the
// nodes sign on their hosts. RKE keeps the kube-ca key only on controlplane
// hosts, so only those can: these tests rotate every service on the
// controlplane nodes, and prove that a worker asked to rotate without a bundle
// refuses before touching anything and stalls the run with a message that says
// why. rke.e2e.test.ts covers the bundle path (workers, shared kube-node).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { SimulatedFleet } from '../../src/simulation/fleet.js';
import { changedPaths, snapshotTree, type TreeEntry } from '../../src/simulation/tree.js';
import type { ClusterState } from '../cluster/cluster.js';
import { ControllerProcess } from './support/controller.js';
import { applyRotation, condition, fleetDebug, getJson, intervals, nodeRotations, opensslVerify, overlappingServers, pemSerial, servedPem, startFleetAndController, startSeparateCluster, stopFleetAndController, stopSeparateCluster, waitRotationCondition } from './support/rotation.js';

const P = 'rotrke-';
const SSL = 'etc/kubernetes/ssl';
let dir: string;
let cluster: ClusterState;
let fleet: SimulatedFleet;
let controller: ControllerProcess;
let kubeconfig: string;

const names = (): { servers: string[]; workers: string[] } => ({
  servers: cluster.nodes.filter((n) => n.roles.includes('controlplane')).map((n) => n.name).sort(),
  workers: cluster.nodes.filter((n) => !n.roles.includes('controlplane')).map((n) => n.name).sort(),
});
const ipOf = (name: string): string => cluster.nodes.find((n) => n.name === name)!.ip;
const dashes = (ip: string): string => ip.replace(/\./g, '-');
const snapshot = (node: string): Promise<Map<string, TreeEntry>> => snapshotTree(fleet.hostRoot(node), (p) => /(^|\/)ssl-backup-\d+$/.test(p));
const debug = (): string => fleetDebug(fleet, controller, (cluster?.nodes ?? []).map((n) => n.name));

async function waitCondition(cond: 'Ready' | 'Stalled', name: string): Promise<void> {
  await waitRotationCondition(name, cond, { timeout: '120s', kubeconfig, debug });
}

beforeAll(async () => {
  ({ dir, cluster } = await startSeparateCluster('rotation-rke-e2e-', { distribution: 'rke', servers: 2, workers: 2, ipPrefix: '127.30' }));
  kubeconfig = cluster.kubeconfig;
  ({ fleet, controller } = await startFleetAndController({
    workDir: join(dir, 'fleet'), distribution: 'rke', nodes: cluster.nodes.map((n) => ({ name: n.name, ip: n.ip, roles: n.roles })), kubeconfig, controllerId: 'rotrke-a', leaseName: 'rotrke-controller',
  }));
}, 240_000);

afterAll(async () => {
  try {
    await stopFleetAndController(fleet, controller, { prefix: P, kubeconfig });
  } finally {
    await stopSeparateCluster(dir);
  }
}, 120_000);

describe('CertificateRotation on an RKE cluster with real agents', () => {
  it('detects rke and rotates every service on the controlplane nodes one at a time: new serials served on 6443/2379/2380, verified against the unchanged kube-ca', async () => {
    const { servers, workers } = names();
    expect(servers).toHaveLength(2);
    const ports = [6443, 2379, 2380];
    const before = new Map<string, string>();
    for (const n of servers) for (const port of ports) before.set(`${n}:${port}`, await pemSerial(await servedPem(ipOf(n), port)));
    const trees = new Map(await Promise.all(cluster.nodes.map(async (n) => [n.name, await snapshot(n.name)] as const)));

    await applyRotation(`${P}cp`, { scope: 'All', strategy: { nodeSelector: { matchLabels: { 'node-role.kubernetes.io/controlplane': 'true' } } } }, kubeconfig);
    await waitCondition('Ready', `${P}cp`);
    const r = await getJson('certrotation', `${P}cp`, kubeconfig);
    expect(r.status).toMatchObject({ phase: 'Succeeded', distribution: 'rke', progress: '2/2' });
    expect(r.status.nodes.map((n: any) => [n.name, n.phase])).toEqual(servers.map((n) => [n, 'Rotated']));
    const nrs = await nodeRotations(`${P}cp`, kubeconfig);
    expect(nrs.map((n) => n.spec.nodeName).sort()).toEqual(servers);
    expect(nrs.every((n) => n.spec.distribution === 'rke' && n.status?.phase === 'Rotated')).toBe(true);
    const iv = intervals(nrs);
    expect(iv.map((i) => i.node)).toEqual(servers);
    expect(overlappingServers(iv)).toEqual([]);

    for (const n of servers) {
      const caFile = join(fleet.hostRoot(n), SSL, 'kube-ca.pem');
      for (const port of ports) {
        const pem = await servedPem(ipOf(n), port);
        expect([`${n}:${port}`, await pemSerial(pem)]).not.toEqual([`${n}:${port}`, before.get(`${n}:${port}`)]);
        expect(await opensslVerify(caFile, pem)).toMatch(/: OK$/);
      }
      const changed = changedPaths(trees.get(n)!, await snapshot(n));
      // The CAs stay; the node's own leaf pairs are renewed (etcd's for this node among them).
      expect(changed.filter((p) => /kube-ca|requestheader-ca/.test(p))).toEqual([]);
      for (const f of ['kube-apiserver', 'kube-node', 'kube-proxy', 'kube-scheduler', 'kube-controller-manager', `kube-etcd-${dashes(ipOf(n))}`, 'kube-apiserver-proxy-client']) {
        expect(changed).toContain(`${SSL}/${f}.pem`);
        expect(changed).toContain(`${SSL}/${f}-key.pem`);
      }
    }
    for (const n of workers) expect([n, changedPaths(trees.get(n)!, await snapshot(n))]).toEqual([n, []]);
  }, 180_000);

  it('with no cluster state to issue a bundle from, a worker (no kube-ca key) refuses before touching its files and the run stalls naming it', async () => {
    const { workers } = names();
    const trees = new Map(await Promise.all(workers.map(async (n) => [n, await snapshot(n)] as const)));
    await applyRotation(`${P}proxy`, { scope: 'Service', service: 'kube-proxy', strategy: { nodeSelector: { matchExpressions: [{ key: 'node-role.kubernetes.io/controlplane', operator: 'DoesNotExist' }] } } }, kubeconfig);
    await waitCondition('Stalled', `${P}proxy`);
    await new Promise((r) => setTimeout(r, 1500));
    const r = await getJson('certrotation', `${P}proxy`, kubeconfig);
    const stalled = condition(r, 'Stalled');
    expect(stalled.message).toContain(`node ${workers[0]} (worker)`);
    expect(stalled.message).toMatch(/failed at step \w+/);
    expect(stalled.message).toMatch(/kube-ca-key\.pem: missing/);
    expect(r.status.phase).toBe('Failed');
    const nrs = await nodeRotations(`${P}proxy`, kubeconfig);
    expect(nrs.map((n) => n.spec.nodeName)).toEqual([workers[0]]);
    for (const n of workers) expect([n, changedPaths(trees.get(n)!, await snapshot(n))]).toEqual([n, []]);
  }, 120_000);
});
