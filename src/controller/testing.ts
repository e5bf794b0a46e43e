// Small builders for unit tests of the pure controller functions, and the
// run invariants those tests check. Not used by production code.
import { expect } from '@jest/globals';
import type { V1Node } from '@kubernetes/client-node';
import type { CertificateRotationStatus } from '../api/certificaterotation.js';
import type { FakeCluster } from './fake-cluster.js';

export interface NodeShape {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  kubelet?: string;
}

export function makeNode(name: string, shape: NodeShape = {}): V1Node {
  return {
    metadata: { name, labels: shape.labels ?? {}, annotations: shape.annotations ?? {} },
    status: shape.kubelet ? { nodeInfo: { kubeletVersion: shape.kubelet } as never } : {},
  };
}

const CP = { 'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/master': 'true' };
const ETCD = { 'node-role.kubernetes.io/etcd': 'true' };
const RKE2_ANN = { 'rke2.io/node-args': '["server"]', 'rke2.io/hostname': 'h', 'rke2.io/internal-ip': '10.0.0.1' };
const RKE_ANN = { 'rke.cattle.io/internal-ip': '10.0.0.1', 'rke.cattle.io/external-ip': '1.2.3.4' };

/** An RKE2 node as RKE2 labels it: servers get control-plane/master and/or etcd; agents nothing. */
export function rke2Node(name: string, roles: { etcd?: boolean; cp?: boolean; workerLabel?: boolean } = {}): V1Node {
  return makeNode(name, {
    kubelet: 'v1.31.4+rke2r1',
    annotations: RKE2_ANN,
    labels: {
      ...(roles.cp ? CP : {}),
      ...(roles.etcd ? ETCD : {}),
      ...(roles.workerLabel ? { 'node-role.kubernetes.io/worker': 'true' } : {}),
    },
  });
}

/** An RKE node as RKE labels it: one label per role. */
export function rkeNode(name: string, roles: { etcd?: boolean; cp?: boolean; worker?: boolean }): V1Node {
  return makeNode(name, {
    kubelet: 'v1.27.16',
    annotations: RKE_ANN,
    labels: {
      ...(roles.cp ? { 'node-role.kubernetes.io/controlplane': 'true' } : {}),
      ...(roles.etcd ? ETCD : {}),
      ...(roles.worker ? { 'node-role.kubernetes.io/worker': 'true' } : {}),
    },
  });
}

const isServerRole = (role: string): boolean => role.includes('etcd') || role.includes('controlplane');

/** Never two servers in flight, never a server next to anything else, never more workers than maxUnavailable. */
export function checkStatus(status: CertificateRotationStatus, maxUnavailable: number): void {
  const flying = (status.nodes ?? []).filter((n) => n.phase === 'Updating');
  const servers = flying.filter((n) => isServerRole(n.role));
  expect(servers.length).toBeLessThanOrEqual(1);
  if (servers.length === 1) expect(flying).toHaveLength(1);
  expect(flying.length).toBeLessThanOrEqual(maxUnavailable);
}

/**
 * Each node's phase in a rotation's latest run, read the way a person reads it:
 * status.nodes for the nodes in flight or stopped, the NodeRotation's report
 * for a Rotated one, and Pending for every other node of `planned`.
 */
export function runPhases(fake: FakeCluster, name: string, planned: readonly string[]): Record<string, string> {
  const status = fake.rotation(name)!.status!;
  const out: Record<string, string> = Object.fromEntries(planned.map((n) => [n, 'Pending']));
  for (const nr of fake.nodeRotationsByName.values()) {
    if (nr.spec.rotation === name && nr.spec.generation === status.runGeneration && nr.status?.phase === 'Rotated') out[nr.spec.nodeName] = 'Rotated';
  }
  for (const n of status.nodes ?? []) out[n.name] = n.phase;
  return out;
}

/** How many nodes status.counts says are planned, in all roles. */
export const plannedCount = (status: CertificateRotationStatus): number => (status.counts ?? []).reduce((sum, c) => sum + c.planned, 0);

/** The same, over the NodeRotation objects themselves (what agents act on); a node whose Node object is gone has no agent left. */
export function checkInFlightObjects(fake: FakeCluster): void {
  const present = new Set(fake.nodeList.map((n) => n.metadata?.name));
  const open = [...fake.nodeRotationsByName.values()].filter((nr) => present.has(nr.spec.nodeName) && !['Rotated', 'Failed', 'RolledBack'].includes(nr.status?.phase ?? 'Pending'));
  const servers = open.filter((nr) => isServerRole(nr.spec.role));
  expect(servers.length).toBeLessThanOrEqual(1);
  if (servers.length === 1) expect(open).toHaveLength(1);
}
