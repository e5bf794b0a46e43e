// Simulated nodes: kwok-managed Node objects that look like real RKE2 or RKE nodes
// to the operator — the role labels and annotations each distribution sets, its
// kubelet version string and an InternalIP on loopback that the simulated host
// components of that node listen on.
import type { CoreV1Api, V1Node } from '@kubernetes/client-node';
import { runNet } from '../../src/simulation/loopback.js';
import { sleep } from './processes.js';

export type SimDistribution = 'rke2' | 'rke';
export type SimRole = 'etcd' | 'controlplane' | 'worker';

export interface Topology {
  distribution: SimDistribution;
  /** Nodes with etcd + control plane (the usual RKE2 server). */
  servers: number;
  workers: number;
  etcdOnly?: number;
  controlPlaneOnly?: number;
  /** First two octets of the node IPs; default this run's own network (src/simulation/loopback.ts). */
  ipPrefix?: string;
  /**
   * Added to the third octet of every address: another cluster of the same run
   * picks another base, so its nodes never bind the shared cluster's addresses.
   */
  octetBase?: number;
  /** Prefix of node names, default `<distribution>-`. */
  namePrefix?: string;
  /** Kubernetes version the kubelet strings are made from. */
  kubernetesVersion?: string;
}

export interface SimulatedNode {
  name: string;
  ip: string;
  roles: SimRole[];
  distribution: SimDistribution;
}

export const DEFAULT_TOPOLOGY: Topology = { distribution: 'rke2', servers: 3, workers: 3 };

/** The marker kwok selects the nodes it manages by, so it never touches a node it did not get from us. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';

interface Group {
  kind: string;
  roles: SimRole[];
  count: number;
  octet: number;
}

/**
 * Lays out the node list. Each group gets its own third octet so the addresses
 * say what a node is (127.B.1.x servers, 127.B.10.x workers, …); a group larger
 * than 250 nodes continues in the following octets.
 */
export function layoutNodes(t: Topology): SimulatedNode[] {
  const prefix = t.namePrefix ?? `${t.distribution}-`;
  const ipPrefix = t.ipPrefix ?? runNet();
  const base = t.octetBase ?? 0;
  const groups: Group[] = [
    { kind: 'server', roles: ['etcd', 'controlplane'], count: t.servers, octet: base + 1 },
    { kind: 'etcd', roles: ['etcd'], count: t.etcdOnly ?? 0, octet: base + 3 },
    { kind: 'controlplane', roles: ['controlplane'], count: t.controlPlaneOnly ?? 0, octet: base + 4 },
    { kind: 'worker', roles: ['worker'], count: t.workers, octet: base + 10 },
  ];
  const nodes: SimulatedNode[] = [];
  for (const g of groups) {
    for (let i = 0; i < g.count; i++) {
      const ip = `${ipPrefix}.${g.octet + Math.floor(i / 250)}.${(i % 250) + 1}`;
      nodes.push({ name: `${prefix}${g.kind}-${i + 1}`, ip, roles: g.roles, distribution: t.distribution });
    }
  }
  return nodes;
}

function roleLabels(node: SimulatedNode): Record<string, string> {
  const has = (r: SimRole): boolean => node.roles.includes(r);
  const labels: Record<string, string> = {};
  if (node.distribution === 'rke2') {
    // RKE2 (k3s agent) labels servers control-plane and master, etcd members etcd;
    // plain agents carry no role label at all.
    if (has('controlplane')) {
      labels['node-role.kubernetes.io/control-plane'] = 'true';
      labels['node-role.kubernetes.io/master'] = 'true';
    }
    if (has('etcd')) labels['node-role.kubernetes.io/etcd'] = 'true';
    labels['node.kubernetes.io/instance-type'] = 'rke2';
    labels['beta.kubernetes.io/instance-type'] = 'rke2';
  } else {
    // RKE sets one label per role it deployed on the host.
    if (has('controlplane')) labels['node-role.kubernetes.io/controlplane'] = 'true';
    if (has('etcd')) labels['node-role.kubernetes.io/etcd'] = 'true';
    if (has('worker')) labels['node-role.kubernetes.io/worker'] = 'true';
  }
  return labels;
}

function annotations(node: SimulatedNode): Record<string, string> {
  const common = { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' };
  if (node.distribution === 'rke') {
    return { ...common, 'rke.cattle.io/internal-ip': node.ip, 'rke.cattle.io/external-ip': node.ip };
  }
  const server = node.roles.includes('controlplane') || node.roles.includes('etcd');
  const args = server ? ['server', '--node-ip', node.ip] : ['agent', '--node-ip', node.ip];
  const rke2: Record<string, string> = {
    ...common,
    'rke2.io/hostname': node.name,
    'rke2.io/internal-ip': node.ip,
    'rke2.io/node-args': JSON.stringify(args),
    'rke2.io/node-config-hash': 'SIMULATED',
    'rke2.io/node-env': '{}',
  };
  if (node.roles.includes('etcd')) {
    rke2['etcd.rke2.cattle.io/node-name'] = `${node.name}-simulated`;
    rke2['etcd.rke2.cattle.io/node-address'] = node.ip;
  }
  return rke2;
}

export function nodeManifest(node: SimulatedNode, kubernetesVersion: string): V1Node {
  const kubelet = node.distribution === 'rke2' ? `v${kubernetesVersion}+rke2r1` : 'v1.32.8';
  const runtime = node.distribution === 'rke2' ? 'containerd://2.1.5-k3s1' : 'docker://27.5.1';
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: node.name,
      labels: {
        'kubernetes.io/hostname': node.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
        ...roleLabels(node),
      },
      annotations: annotations(node),
    },
    status: {
      addresses: [
        { type: 'InternalIP', address: node.ip },
        { type: 'Hostname', address: node.name },
      ],
      allocatable: { cpu: '8', memory: '32Gi', pods: '110' },
      capacity: { cpu: '8', memory: '32Gi', pods: '110' },
      nodeInfo: {
        architecture: 'amd64',
        operatingSystem: 'linux',
        osImage: node.distribution === 'rke2' ? 'SUSE Linux Enterprise Server 15 SP6' : 'Ubuntu 24.04.1 LTS',
        kernelVersion: '6.4.0-simulated',
        kubeletVersion: kubelet,
        kubeProxyVersion: kubelet,
        containerRuntimeVersion: runtime,
        bootID: '',
        machineID: '',
        systemUUID: '',
      },
    },
  };
}

/** Creates the nodes (with status: Node status is kept on create) and waits until kwok made them Ready. */
export async function createNodes(core: CoreV1Api, nodes: SimulatedNode[], kubernetesVersion: string, timeoutMs = 120000): Promise<void> {
  const queue = [...nodes];
  // A few creates in flight at once: hundreds of nodes one by one take long,
  // all at once swamp a 2-core apiserver.
  await Promise.all(
    Array.from({ length: Math.min(8, queue.length) }, async () => {
      for (let node = queue.shift(); node; node = queue.shift()) {
        await core.createNode({ body: nodeManifest(node, kubernetesVersion) });
      }
    }),
  );
  await waitNodesReady(core, nodes.map((n) => n.name), timeoutMs);
}

export function isReadyAndUntainted(node: V1Node): boolean {
  const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  return ready && (node.spec?.taints ?? []).length === 0;
}

/**
 * Ready means kwok reported Ready=True and the controller-manager's node
 * lifecycle controller removed the not-ready taint the apiserver put on the new
 * node; until then nothing schedules there.
 */
export async function waitNodesReady(core: CoreV1Api, names: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pending = names;
  while (Date.now() < deadline) {
    const list = await core.listNode();
    const byName = new Map(list.items.map((n) => [n.metadata?.name, n]));
    pending = names.filter((name) => {
      const node = byName.get(name);
      return !node || !isReadyAndUntainted(node);
    });
    if (pending.length === 0) return;
    await sleep(500);
  }
  throw new Error(`nodes not Ready and untainted after ${timeoutMs / 1000}s: ${pending.slice(0, 10).join(', ')}`);
}

export async function deleteNodes(core: CoreV1Api, names: string[]): Promise<void> {
  for (const name of names) {
    try {
      await core.deleteNode({ name });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }
}
