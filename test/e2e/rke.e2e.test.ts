// RKE with the controller-issued bundle, end to end: a control plane whose
// kwok nodes are RKE nodes (1 etcd+controlplane server, 2 workers on
// its own block of the run's loopback network), a kube-system/full-cluster-state Secret built from the
// simulated hosts' material (the kube-ca key lives there and on the server
// only), the controller as a child process and real agents.
//
// What it proves: workers (no kube-ca key on the host) are rotated; a shared
// certificate (kube-node) has ONE new serial on every node and in
// full-cluster-state (desiredState and currentState); everything verifies
// against the unchanged kube-ca; the served certificates are new; the bundle
// Secret is gone afterwards and nothing printed a private key.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFullState, stateSerials } from '../../src/controller/rke-bundle.js';
import { SimulatedFleet } from '../../src/simulation/fleet.js';
import { fullClusterStateFromTrees } from '../../src/simulation/rke-state.js';
import type { ClusterState } from '../cluster/cluster.js';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { ControllerProcess, waitFor } from './support/controller.js';
import { applyRotation, fleetDebug, getJson, nodeRotations, normSerial, opensslVerify, pemSerial, runPhases, servedPem, startFleetAndController, startSeparateCluster, stopFleetAndController, stopSeparateCluster, waitRotationCondition } from './support/rotation.js';

const P = 'rkeb-';
const SSL = 'etc/kubernetes/ssl';
let dir: string;
let cluster: ClusterState;
let fleet: SimulatedFleet;
let controller: ControllerProcess;
let kubeconfig: string;

const server = (): string => cluster.nodes.find((n) => n.roles.includes('controlplane'))!.name;
const ipOf = (name: string): string => cluster.nodes.find((n) => n.name === name)!.ip;
const debug = (): string => fleetDebug(fleet, controller, (cluster?.nodes ?? []).map((n) => n.name));

async function readState(): Promise<string> {
  const out = await kubectlOk(['-n', 'kube-system', 'get', 'secret', 'full-cluster-state', '-o', 'jsonpath={.data.full-cluster-state}'], { kubeconfig });
  return Buffer.from(out, 'base64').toString('utf8');
}

const fileSerial = async (node: string, name: string): Promise<string> => pemSerial(await readFile(join(fleet.hostRoot(node), SSL, `${name}.pem`), 'utf8'));

async function waitReady(name: string): Promise<any> {
  await waitRotationCondition(name, 'Ready', { timeout: '150s', kubeconfig, debug });
  return getJson('certrotation', name, kubeconfig);
}

beforeAll(async () => {
  ({ dir, cluster } = await startSeparateCluster('rke-bundle-e2e-', { distribution: 'rke', servers: 1, workers: 2, octetBase: 120 }));
  kubeconfig = cluster.kubeconfig;
  ({ fleet, controller } = await startFleetAndController({
    workDir: join(dir, 'fleet'), distribution: 'rke', nodes: cluster.nodes.map((n) => ({ name: n.name, ip: n.ip, roles: n.roles })), kubeconfig, controllerId: 'rkeb-a', leaseName: 'rkeb-controller',
    // The state as RKE leaves it: built from the hosts, the server's copies first (it holds the CA keys).
    beforeStart: async (f: SimulatedFleet) => {
      const trees = [...cluster.nodes].sort((a, b) => Number(b.roles.includes('controlplane')) - Number(a.roles.includes('controlplane'))).map((n) => ({ root: f.hostRoot(n.name) }));
      const stateFile = join(dir, 'full-cluster-state.json');
      writeFileSync(stateFile, await fullClusterStateFromTrees(trees), { mode: 0o600 });
      await kubectlOk(['-n', 'kube-system', 'create', 'secret', 'generic', 'full-cluster-state', `--from-file=full-cluster-state=${stateFile}`], { kubeconfig });
      rmSync(stateFile);
    },
  }));
}, 240_000);

afterAll(async () => {
  try {
    await stopFleetAndController(fleet, controller, { prefix: P, kubeconfig });
  } finally {
    await stopSeparateCluster(dir);
  }
}, 120_000);

async function expectShared(name: string, state: string): Promise<string> {
  const serials = await Promise.all(cluster.nodes.map(async (n) => [n.name, await fileSerial(n.name, name)] as const));
  const inState = normSerial(stateSerials(state).get(name)!);
  expect(serials).toEqual(cluster.nodes.map((n) => [n.name, inState]));
  const parsed = parseFullState(state);
  expect(parsed.desiredState!.certificatesBundle![name]!.certificatePEM).toBe(parsed.currentState!.certificatesBundle![name]!.certificatePEM);
  for (const n of cluster.nodes) {
    const caFile = join(fleet.hostRoot(n.name), SSL, 'kube-ca.pem');
    expect(await opensslVerify(caFile, await readFile(join(fleet.hostRoot(n.name), SSL, `${name}.pem`), 'utf8'))).toMatch(/: OK$/);
  }
  return inState;
}

async function bundleSecrets(): Promise<string> {
  const r = await kubectl(['get', 'secrets', '-A', '-l', 'certrotator.io/rke-bundle=true', '-o', 'name'], { kubeconfig });
  return r.stdout.trim();
}

describe('RKE rotations with the controller-issued bundle', () => {
  it('kubelet (kube-node, shared): every node — workers included — Rotated with the SAME new serial, also in full-cluster-state', async () => {
    const stateBefore = await readState();
    const before = normSerial(stateSerials(stateBefore).get('kube-node')!);
    await applyRotation(`${P}kubelet`, { scope: 'Service', service: 'kubelet', strategy: { maxUnavailable: 2 } }, kubeconfig);
    const r = await waitReady(`${P}kubelet`);
    expect(r.status).toMatchObject({ phase: 'Succeeded', distribution: 'rke', progress: '3/3' });
    expect(Object.values(await runPhases(`${P}kubelet`, [], kubeconfig))).toEqual(['Rotated', 'Rotated', 'Rotated']);
    const nrs = await nodeRotations(`${P}kubelet`, kubeconfig);
    expect(nrs.map((n) => n.spec.bundleSecretRef?.name)).toEqual(Array(3).fill('certrotator-rke-bundle'));
    const state = await readState();
    const serial = await expectShared('kube-node', state);
    expect(serial).not.toBe(before);
    for (const nr of nrs) expect(nr.status?.files?.map((f) => normSerial(f.newSerial!))).toEqual([serial]);
    // Only kube-node changed in the state.
    const a = stateSerials(stateBefore);
    const b = stateSerials(state);
    expect([...b].filter(([k, v]) => a.get(k) !== v).map(([k]) => k)).toEqual(['kube-node']);
    await waitFor('bundle deleted', async () => (await bundleSecrets()) === '', 20_000);
  }, 240_000);

  it('all services: servers and workers Rotated; kube-node and kube-proxy shared; served certificates new and from kube-ca; the state holds what is served', async () => {
    const s = server();
    const stateBefore = await readState();
    const ports = [6443, 2379, 2380];
    const servedBefore = new Map<number, string>();
    for (const port of ports) servedBefore.set(port, await pemSerial(await servedPem(ipOf(s), port)));
    await applyRotation(`${P}all`, { scope: 'All', strategy: { maxUnavailable: 2 } }, kubeconfig);
    const r = await waitReady(`${P}all`);
    expect(r.status).toMatchObject({ phase: 'Succeeded', progress: '3/3' });
    const state = await readState();
    await expectShared('kube-node', state);
    await expectShared('kube-proxy', state);
    const serials = stateSerials(state);
    const caFile = join(fleet.hostRoot(s), SSL, 'kube-ca.pem');
    const etcdName = `kube-etcd-${ipOf(s).replace(/\./g, '-')}`;
    for (const port of ports) {
      const pem = await servedPem(ipOf(s), port);
      const served = await pemSerial(pem);
      expect([port, served]).not.toEqual([port, servedBefore.get(port)]);
      expect(await opensslVerify(caFile, pem)).toMatch(/: OK$/);
      expect(served).toBe(normSerial(serials.get(port === 6443 ? 'kube-apiserver' : etcdName)!));
    }
    for (const name of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', etcdName, 'kube-apiserver-proxy-client']) {
      expect([name, await fileSerial(s, name)]).toEqual([name, normSerial(serials.get(name)!)]);
    }
    // The CAs did not change anywhere.
    for (const ca of ['kube-ca', 'kube-apiserver-requestheader-ca']) {
      expect(serials.get(ca)).toBe(stateSerials(stateBefore).get(ca));
      expect(parseFullState(state).currentState!.certificatesBundle![ca]).toEqual(parseFullState(stateBefore).currentState!.certificatesBundle![ca]);
    }
    await waitFor('bundle deleted', async () => (await bundleSecrets()) === '', 20_000);
  }, 240_000);
});
