import { describe, expect, it } from '@jest/globals';
import { runNet } from '../../src/simulation/loopback.js';
import { isReadyAndUntainted, layoutNodes, nodeManifest } from './nodes.js';

describe('layoutNodes', () => {
  it("lays out the default RKE2 topology with role-coded addresses in this run's loopback network", () => {
    const nodes = layoutNodes({ distribution: 'rke2', servers: 3, workers: 3 });
    const net = runNet();
    expect(net).toMatch(/^127\.([1-9]\d?|1\d\d|2[0-4]\d|25[0-4])$/);
    expect(nodes.map((n) => [n.name, n.ip, n.roles.join(',')])).toEqual([
      ['rke2-server-1', `${net}.1.1`, 'etcd,controlplane'],
      ['rke2-server-2', `${net}.1.2`, 'etcd,controlplane'],
      ['rke2-server-3', `${net}.1.3`, 'etcd,controlplane'],
      ['rke2-worker-1', `${net}.10.1`, 'worker'],
      ['rke2-worker-2', `${net}.10.2`, 'worker'],
      ['rke2-worker-3', `${net}.10.3`, 'worker'],
    ]);
  });

  it('moves a second cluster of the same run to its own third octets', () => {
    const nodes = layoutNodes({ distribution: 'rke', servers: 1, workers: 1, ipPrefix: '127.7', octetBase: 160 });
    expect(nodes.map((n) => n.ip)).toEqual(['127.7.161.1', '127.7.170.1']);
  });

  it('gives 500 workers 500 distinct addresses, spilling into the next octets', () => {
    const nodes = layoutNodes({ distribution: 'rke', servers: 3, workers: 500, etcdOnly: 1, controlPlaneOnly: 1, ipPrefix: '127.1' });
    expect(new Set(nodes.map((n) => n.ip)).size).toBe(505);
    expect(nodes.find((n) => n.name === 'rke-worker-251')?.ip).toBe('127.1.11.1');
    expect(nodes.find((n) => n.name === 'rke-etcd-1')?.roles).toEqual(['etcd']);
    expect(nodes.every((n) => n.ip.startsWith('127.1.'))).toBe(true);
  });
});

describe('nodeManifest', () => {
  const cases = [
    {
      name: 'RKE2 server',
      node: { name: 's', ip: '127.0.1.1', roles: ['etcd', 'controlplane'] as const, distribution: 'rke2' as const },
      labels: { 'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/etcd': 'true', 'node-role.kubernetes.io/master': 'true' },
      absent: ['node-role.kubernetes.io/worker'],
      annotations: { 'rke2.io/internal-ip': '127.0.1.1', 'etcd.rke2.cattle.io/node-address': '127.0.1.1' },
      kubelet: 'v1.36.3+rke2r1',
    },
    {
      name: 'RKE2 agent',
      node: { name: 'w', ip: '127.0.10.1', roles: ['worker'] as const, distribution: 'rke2' as const },
      labels: { 'node.kubernetes.io/instance-type': 'rke2' },
      absent: ['node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/etcd', 'node-role.kubernetes.io/worker'],
      annotations: { 'rke2.io/node-args': '["agent","--node-ip","127.0.10.1"]' },
      kubelet: 'v1.36.3+rke2r1',
    },
    {
      name: 'RKE etcd+controlplane',
      node: { name: 'r', ip: '127.0.1.1', roles: ['etcd', 'controlplane'] as const, distribution: 'rke' as const },
      labels: { 'node-role.kubernetes.io/controlplane': 'true', 'node-role.kubernetes.io/etcd': 'true' },
      absent: ['node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/worker'],
      annotations: { 'rke.cattle.io/internal-ip': '127.0.1.1' },
      kubelet: 'v1.32.8',
    },
  ];
  it.each(cases)('marks a $name the way the distribution does', ({ node, labels, absent, annotations, kubelet }) => {
    const manifest = nodeManifest({ ...node, roles: [...node.roles] }, '1.36.3');
    expect(manifest.metadata?.labels).toMatchObject(labels);
    for (const key of absent) expect(manifest.metadata?.labels?.[key]).toBeUndefined();
    expect(manifest.metadata?.annotations).toMatchObject({ ...annotations, 'kwok.x-k8s.io/node': 'fake' });
    expect(manifest.status?.nodeInfo?.kubeletVersion).toBe(kubelet);
    expect(manifest.status?.addresses).toContainEqual({ type: 'InternalIP', address: node.ip });
    expect(manifest.spec?.taints).toBeUndefined();
  });
});

describe('isReadyAndUntainted', () => {
  it.each([
    [{ status: { conditions: [{ type: 'Ready', status: 'True' }] } }, true],
    [{ status: { conditions: [{ type: 'Ready', status: 'False' }] } }, false],
    [{ spec: { taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }] }, status: { conditions: [{ type: 'Ready', status: 'True' }] } }, false],
    [{}, false],
  ])('%j -> %s', (node, want) => {
    expect(isReadyAndUntainted(node as never)).toBe(want);
  });
});
