import { describe, expect, it } from '@jest/globals';
import type { V1Node } from '@kubernetes/client-node';
import { detectDistribution, isServer, nodeMarks, nodeRoles, plannerView, roleString } from './detect.js';
import { planRotation } from './plan.js';
import { makeNode, rke2Node, rkeNode } from './testing.js';

describe('nodeMarks: one node', () => {
  it.each<[string, V1Node, string[]]>([
    ['RKE2 kubelet version alone', makeNode('a', { kubelet: 'v1.31.4+rke2r1' }), ['rke2']],
    ['rke2.io/node-args annotation alone', makeNode('a', { annotations: { 'rke2.io/node-args': '[]' } }), ['rke2']],
    ['rke2.io/internal-ip annotation alone', makeNode('a', { annotations: { 'rke2.io/internal-ip': '10.0.0.1' } }), ['rke2']],
    ['RKE internal-ip annotation', makeNode('a', { annotations: { 'rke.cattle.io/internal-ip': '10.0.0.1' } }), ['rke']],
    ['RKE external-ip annotation', makeNode('a', { annotations: { 'rke.cattle.io/external-ip': '1.2.3.4' } }), ['rke']],
    ['RKE controlplane label', makeNode('a', { labels: { 'node-role.kubernetes.io/controlplane': 'true' } }), ['rke']],
    ['K3s kubelet version', makeNode('a', { kubelet: 'v1.31.4+k3s1' }), ['k3s']],
    ['k3s.io annotation', makeNode('a', { annotations: { 'k3s.io/node-args': '[]' } }), ['k3s']],
    ['Rancher machine annotation is not an RKE mark', makeNode('a', { annotations: { 'rke.cattle.io/machine': 'x' } }), []],
    ['control-plane label alone decides nothing', makeNode('a', { labels: { 'node-role.kubernetes.io/control-plane': 'true' } }), []],
    ['kubeadm control-plane label (value "") decides nothing', makeNode('a', { kubelet: 'v1.31.4', labels: { 'node-role.kubernetes.io/control-plane': '' } }), []],
    ['plain upstream kubelet decides nothing', makeNode('a', { kubelet: 'v1.31.4' }), []],
    ['RKE2 and RKE marks on one node', makeNode('a', { kubelet: 'v1.31.4+rke2r1', annotations: { 'rke.cattle.io/internal-ip': 'x' } }), ['rke', 'rke2']],
  ])('%s', (_name, node, flavors) => {
    expect(nodeMarks(node).flavors).toEqual(flavors);
  });
});

describe('detectDistribution', () => {
  it('RKE2 servers and agents: rke2', () => {
    const d = detectDistribution([rke2Node('s1', { etcd: true, cp: true }), rke2Node('w1')]);
    expect(d).toEqual({ ok: true, distribution: 'rke2', message: expect.stringContaining('RKE2: 2 of 2') });
  });

  it('RKE nodes: rke', () => {
    const d = detectDistribution([rkeNode('s1', { etcd: true, cp: true }), rkeNode('w1', { worker: true })]);
    expect(d).toMatchObject({ ok: true, distribution: 'rke' });
  });

  it('a node without marks does not block an otherwise clear answer', () => {
    expect(detectDistribution([rke2Node('s1', { cp: true }), makeNode('bare')])).toMatchObject({ ok: true, distribution: 'rke2' });
  });

  it.each<[string, V1Node[], string, RegExp]>([
    ['no nodes', [], 'NoNodes', /no nodes/],
    ['RKE2 and RKE nodes together', [rke2Node('s1', { cp: true }), rkeNode('r1', { worker: true })], 'Mixed', /RKE \(1 node\(s\), e\.g\. r1.*vs RKE2 \(1 node\(s\), e\.g\. s1/],
    ['one node with both marks', [makeNode('x', { kubelet: 'v1.30.1+rke2r1', annotations: { 'rke.cattle.io/internal-ip': 'i' } })], 'Mixed', /node x carries marks of RKE and RKE2/],
    ['K3s', [makeNode('k', { kubelet: 'v1.31.4+k3s1' })], 'Unsupported', /K3s.*does not support/],
    ['kubeadm-looking nodes', [makeNode('a', { kubelet: 'v1.31.4', labels: { 'node-role.kubernetes.io/control-plane': '' } })], 'Unknown', /none of 1 node\(s\).*set spec.distribution/],
    ['control-plane=true with a plain kubelet', [makeNode('a', { kubelet: 'v1.31.4', labels: { 'node-role.kubernetes.io/control-plane': 'true' } })], 'Unknown', /a has label node-role.kubernetes.io\/control-plane=true/],
  ])('%s: %s', (_name, nodes, reason, message) => {
    const d = detectDistribution(nodes);
    expect(d.ok).toBe(false);
    if (d.ok) return;
    expect(d.reason).toBe(reason);
    expect(d.message).toMatch(message);
  });
});

describe('nodeRoles', () => {
  it.each<[string, V1Node, 'rke2' | 'rke', string]>([
    ['RKE2 all-in-one server', rke2Node('a', { etcd: true, cp: true }), 'rke2', 'etcd,controlplane'],
    ['RKE2 etcd-only server', rke2Node('a', { etcd: true }), 'rke2', 'etcd'],
    ['RKE2 control-plane-only server', rke2Node('a', { cp: true }), 'rke2', 'controlplane'],
    ['RKE2 agent (no role label)', rke2Node('a'), 'rke2', 'worker'],
    ['RKE2 agent labelled worker by Rancher', rke2Node('a', { workerLabel: true }), 'rke2', 'worker'],
    ['Rancher etcd+worker machine', rke2Node('a', { etcd: true, workerLabel: true }), 'rke2', 'etcd,worker'],
    ['RKE2 server with only the legacy master label', makeNode('a', { labels: { 'node-role.kubernetes.io/master': 'true' } }), 'rke2', 'controlplane'],
    ['RKE2: label value must be "true"', makeNode('a', { labels: { 'node-role.kubernetes.io/control-plane': '' } }), 'rke2', 'worker'],
    ['RKE etcd+controlplane', rkeNode('a', { etcd: true, cp: true }), 'rke', 'etcd,controlplane'],
    ['RKE all three roles', rkeNode('a', { etcd: true, cp: true, worker: true }), 'rke', 'etcd,controlplane,worker'],
    ['RKE worker', rkeNode('a', { worker: true }), 'rke', 'worker'],
    ['RKE node with no role label has no role', rkeNode('a', {}), 'rke', ''],
    ['RKE2 control-plane label means nothing on RKE', rke2Node('a', { cp: true }), 'rke', ''],
  ])('%s → %j', (_name, node, distribution, roles) => {
    expect(roleString(nodeRoles(node, distribution))).toBe(roles);
  });

  it('servers are etcd or control-plane nodes', () => {
    expect(isServer(['etcd'])).toBe(true);
    expect(isServer(['controlplane', 'worker'])).toBe(true);
    expect(isServer(['worker'])).toBe(false);
  });
});

describe('plannerView: what the controller caches of a Node', () => {
  it('drops what planning does not read, and plans exactly as from the whole Node', () => {
    const full = (n: V1Node): V1Node => ({
      ...n,
      spec: { podCIDR: '10.42.0.0/24', taints: [{ key: 'k', effect: 'NoSchedule' }] },
      status: {
        ...n.status,
        images: Array.from({ length: 40 }, (_, i) => ({ names: [`registry/image-${i}@sha256:${'0'.repeat(64)}`], sizeBytes: 1e8 })),
        conditions: [{ type: 'Ready', status: 'True' }],
        addresses: [{ type: 'InternalIP', address: '10.0.0.1' }],
      },
    });
    for (const nodes of [
      [rke2Node('s1', { etcd: true, cp: true }), rke2Node('s2', { cp: true }), rke2Node('w1')],
      [rkeNode('e1', { etcd: true }), rkeNode('c1', { cp: true }), rkeNode('w1', { worker: true })],
    ]) {
      const whole = nodes.map(full);
      const trimmed = whole.map(plannerView);
      expect(JSON.stringify(trimmed).length).toBeLessThan(JSON.stringify(whole).length / 4);
      expect(trimmed.map((n) => [n.spec, n.status?.images])).toEqual(trimmed.map(() => [undefined, undefined]));
      const d = detectDistribution(whole);
      expect(detectDistribution(trimmed)).toEqual(d);
      if (!d.ok) throw new Error(d.message);
      const input = { distribution: d.distribution, scope: 'All' as const, maxUnavailable: 1 };
      expect(planRotation({ ...input, nodes: trimmed })).toEqual(planRotation({ ...input, nodes: whole }));
    }
  });
});
