// Which distribution runs this cluster, and which roles each node has, read
// from the marks RKE2 and RKE leave on Node objects. Pure functions over
// V1Node so the controller can call them on its informer cache.
//
// The marks, checked against upstream source:
// - RKE2 is K3s built with version.Program = "rke2", so every K3s mark carries
//   the "rke2" prefix:
//   * annotations `rke2.io/node-args`, `rke2.io/node-env`, `rke2.io/node-config-hash`
//     (k3s-io/k3s pkg/nodeconfig/nodeconfig.go: version.Program + ".io/node-args" …);
//   * annotations `rke2.io/hostname`, `rke2.io/internal-ip`, `rke2.io/external-ip`
//     (k3s-io/k3s pkg/cloudprovider: version.Program + ".io/internal-ip" …);
//   * kubelet version `v1.x.y+rke2rN`;
//   * labels `node-role.kubernetes.io/control-plane`, `…/master`, `…/etcd` = "true"
//     (k3s-io/k3s pkg/server: ControlPlaneRoleLabelKey, MasterRoleLabelKey,
//     ETCDRoleLabelKey). An etcd-only server loses control-plane/master and keeps etcd.
//   K3s leaves the same marks with "k3s" (`k3s.io/…`, `+k3s1`): recognised so we
//   can say "K3s is not supported" instead of guessing.
// - RKE (v1):
//   * labels `node-role.kubernetes.io/controlplane`, `…/etcd`, `…/worker` = "true"
//     (rancher/rke cluster/hosts.go: controlplaneRoleLabel, etcdRoleLabel,
//     workerRoleLabel; note `controlplane` without the hyphen);
//   * annotations `rke.cattle.io/internal-ip`, `rke.cattle.io/external-ip`
//     (rancher/rke k8s/node.go: InternalAddressAnnotation, ExternalAddressAnnotation);
//   * a kubelet version with no `+distribution` suffix.
//   Exact annotation keys only: Rancher puts other `rke.cattle.io/…` keys on
//   RKE2 machines, so a prefix match would misread a Rancher RKE2 cluster.
// kubeadm uses `node-role.kubernetes.io/control-plane` too, but with the value "",
// which is why role labels only count with the value "true".

import type { V1Node } from '@kubernetes/client-node';
import { ROLE_ORDER } from '../api/constants.js';
import type { Distribution, NodeRole } from '../distributions/services.js';

export const NODE_LABELS = {
  controlPlane: 'node-role.kubernetes.io/control-plane',
  master: 'node-role.kubernetes.io/master',
  etcd: 'node-role.kubernetes.io/etcd',
  rkeControlPlane: 'node-role.kubernetes.io/controlplane',
  worker: 'node-role.kubernetes.io/worker',
} as const;

export const NODE_ANNOTATIONS = {
  rke2Prefix: 'rke2.io/',
  k3sPrefix: 'k3s.io/',
  rkeInternalIP: 'rke.cattle.io/internal-ip',
  rkeExternalIP: 'rke.cattle.io/external-ip',
} as const;

/** What one node looks like: K3s is recognised only to be refused clearly. */
export type NodeFlavor = Distribution | 'k3s';

export interface NodeMarks {
  node: string;
  /** Flavors with decisive evidence on this node (normally exactly one). */
  flavors: NodeFlavor[];
  /** Human-readable evidence, e.g. `kubelet v1.31.4+rke2r1`. */
  evidence: string[];
}

export type DetectionFailure = 'NoNodes' | 'Mixed' | 'Unknown' | 'Unsupported';

export type Detection =
  | { ok: true; distribution: Distribution; message: string }
  | { ok: false; reason: DetectionFailure; message: string };

/**
 * The part of a Node that detection and planning read: name, labels,
 * annotations and the kubelet version. The controller caches every Node of
 * the cluster; a real Node also carries its image list, conditions, capacity
 * and addresses (often tens of KB each), none of which a plan needs.
 */
export function plannerView(node: V1Node): V1Node {
  const m = node.metadata ?? {};
  const kubeletVersion = node.status?.nodeInfo?.kubeletVersion;
  return {
    apiVersion: node.apiVersion,
    kind: node.kind,
    metadata: {
      name: m.name,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      // A run's nodes are the ones that existed when it started (run-state.ts).
      ...(m.creationTimestamp ? { creationTimestamp: m.creationTimestamp } : {}),
      ...(m.labels ? { labels: m.labels } : {}),
      ...(m.annotations ? { annotations: m.annotations } : {}),
    },
    status: kubeletVersion !== undefined ? { nodeInfo: { kubeletVersion } as NonNullable<V1Node['status']>['nodeInfo'] } : {},
  };
}

function isTrue(labels: Record<string, string> | undefined, key: string): boolean {
  return labels?.[key] === 'true';
}

/** Decisive marks on one node. */
export function nodeMarks(node: V1Node): NodeMarks {
  const name = node.metadata?.name ?? '<unnamed>';
  const labels = node.metadata?.labels ?? {};
  const annotations = Object.keys(node.metadata?.annotations ?? {});
  const kubelet = node.status?.nodeInfo?.kubeletVersion ?? '';
  const flavors = new Set<NodeFlavor>();
  const evidence: string[] = [];

  if (/\+rke2/.test(kubelet)) {
    flavors.add('rke2');
    evidence.push(`kubelet ${kubelet}`);
  } else if (/\+k3s/.test(kubelet)) {
    flavors.add('k3s');
    evidence.push(`kubelet ${kubelet}`);
  }
  const rke2Annotation = annotations.find((a) => a.startsWith(NODE_ANNOTATIONS.rke2Prefix));
  if (rke2Annotation) {
    flavors.add('rke2');
    evidence.push(`annotation ${rke2Annotation}`);
  }
  const k3sAnnotation = annotations.find((a) => a.startsWith(NODE_ANNOTATIONS.k3sPrefix));
  if (k3sAnnotation) {
    flavors.add('k3s');
    evidence.push(`annotation ${k3sAnnotation}`);
  }
  const rkeAnnotation = annotations.find(
    (a) => a === NODE_ANNOTATIONS.rkeInternalIP || a === NODE_ANNOTATIONS.rkeExternalIP,
  );
  if (rkeAnnotation) {
    flavors.add('rke');
    evidence.push(`annotation ${rkeAnnotation}`);
  }
  if (isTrue(labels, NODE_LABELS.rkeControlPlane)) {
    flavors.add('rke');
    evidence.push(`label ${NODE_LABELS.rkeControlPlane}=true`);
  }
  // Role labels shared by RKE2 and K3s decide only when nothing else did, and
  // only for a kubelet that is not plainly upstream (RKE2 kubelets always carry
  // +rke2; a plain version with these labels is something we do not know).
  if (flavors.size === 0 && (isTrue(labels, NODE_LABELS.controlPlane) || isTrue(labels, NODE_LABELS.master))) {
    evidence.push(`label ${NODE_LABELS.controlPlane}=true (RKE2 or K3s)`);
  }
  return { node: name, flavors: [...flavors].sort(), evidence };
}

const DISPLAY: Record<NodeFlavor, string> = { rke2: 'RKE2', rke: 'RKE', k3s: 'K3s' };

/**
 * The cluster's distribution from all its nodes, or a reason it cannot be
 * told. Every node with decisive marks must agree; nodes without any (rare:
 * e.g. a node registered by hand) do not block detection.
 */
export function detectDistribution(nodes: readonly V1Node[]): Detection {
  if (nodes.length === 0) {
    return { ok: false, reason: 'NoNodes', message: 'no nodes to detect the distribution from; set spec.distribution' };
  }
  const marks = nodes.map(nodeMarks);
  const byFlavor = new Map<NodeFlavor, NodeMarks[]>();
  for (const m of marks) {
    if (m.flavors.length > 1) {
      return {
        ok: false,
        reason: 'Mixed',
        message: `node ${m.node} carries marks of ${m.flavors.map((f) => DISPLAY[f]).join(' and ')} (${m.evidence.join(', ')}); set spec.distribution`,
      };
    }
    const [flavor] = m.flavors;
    if (flavor) byFlavor.set(flavor, [...(byFlavor.get(flavor) ?? []), m]);
  }
  if (byFlavor.size > 1) {
    const parts = [...byFlavor.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([f, ms]) => `${DISPLAY[f]} (${ms.length} node(s), e.g. ${ms[0]!.node}: ${ms[0]!.evidence[0]})`);
    return { ok: false, reason: 'Mixed', message: `nodes disagree about the distribution: ${parts.join(' vs ')}; set spec.distribution` };
  }
  const [only] = [...byFlavor.entries()];
  if (!only) {
    const hint = marks.find((m) => m.evidence.length > 0);
    return {
      ok: false,
      reason: 'Unknown',
      message:
        `none of ${nodes.length} node(s) carries an RKE2 mark (kubelet +rke2, rke2.io/ annotations) or an RKE mark ` +
        `(rke.cattle.io/internal-ip annotation, node-role.kubernetes.io/controlplane label)` +
        (hint ? `; ${hint.node} has ${hint.evidence.join(', ')}` : '') +
        '; set spec.distribution',
    };
  }
  const [flavor, flavored] = only;
  if (flavor === 'k3s') {
    return {
      ok: false,
      reason: 'Unsupported',
      message: `the cluster runs K3s (${flavored[0]!.node}: ${flavored[0]!.evidence.join(', ')}), which certrotator does not support yet`,
    };
  }
  return {
    ok: true,
    distribution: flavor,
    message: `${DISPLAY[flavor]}: ${flavored.length} of ${nodes.length} node(s) carry its marks, e.g. ${flavored[0]!.node}: ${flavored[0]!.evidence.join(', ')}`,
  };
}

/**
 * A node's roles as the distribution assigns them, in ROLE_ORDER.
 *
 * RKE2: servers carry etcd and/or control-plane (or the older master) labels;
 * a node with neither is an agent, i.e. a worker. Rancher also labels worker
 * machines `node-role.kubernetes.io/worker=true`, which adds the worker role
 * to a server (Rancher's "etcd+worker" and all-in-one nodes).
 *
 * RKE: every node carries the labels of its roles; a node with none is not
 * part of the RKE cluster and gets no role (the planner skips it).
 */
export function nodeRoles(node: V1Node, distribution: Distribution): NodeRole[] {
  const labels = node.metadata?.labels ?? {};
  const roles = new Set<NodeRole>();
  if (isTrue(labels, NODE_LABELS.etcd)) roles.add('etcd');
  if (distribution === 'rke2') {
    if (isTrue(labels, NODE_LABELS.controlPlane) || isTrue(labels, NODE_LABELS.master)) roles.add('controlplane');
    if (isTrue(labels, NODE_LABELS.worker) || roles.size === 0) roles.add('worker');
  } else {
    if (isTrue(labels, NODE_LABELS.rkeControlPlane)) roles.add('controlplane');
    if (isTrue(labels, NODE_LABELS.worker)) roles.add('worker');
  }
  return ROLE_ORDER.filter((r) => roles.has(r));
}

/** `etcd,controlplane` — the role string of status.nodes[].role and NodeRotation spec.role. */
export function roleString(roles: readonly NodeRole[]): string {
  return ROLE_ORDER.filter((r) => roles.includes(r)).join(',');
}

/** A server runs etcd or the control plane and is always rotated alone. */
export function isServer(roles: readonly NodeRole[]): boolean {
  return roles.includes('etcd') || roles.includes('controlplane');
}
