// The service names a CertificateRotation may name, per distribution, and which
// node roles each service matters to. This is the one list the CRD's CEL rules,
// the planner and the catalogs all read, so a name can never be valid in one
// place and unknown in another.

export const DISTRIBUTIONS = ['rke2', 'rke'] as const;
export type Distribution = (typeof DISTRIBUTIONS)[number];

export type NodeRole = 'etcd' | 'controlplane' | 'worker';

// RKE2 names as `rke2 certificate rotate --service` accepts them
// (k3s pkg/util/services/services.go). `supervisor` is newer than the Rancher UI
// list (rke2#5652) but current RKE2 accepts it, so we do too.
export const RKE2_SERVICES = [
  'admin',
  'api-server',
  'controller-manager',
  'scheduler',
  'rke2-controller',
  'rke2-server',
  'cloud-controller',
  'etcd',
  'auth-proxy',
  'kubelet',
  'kube-proxy',
  'supervisor',
] as const;

// RKE names as `rke cert rotate --service` accepts them (rancher/rke cmd/cert.go):
// the container names of the RKE services.
export const RKE_SERVICES = [
  'etcd',
  'kubelet',
  'kube-apiserver',
  'kube-proxy',
  'kube-scheduler',
  'kube-controller-manager',
] as const;

export type Rke2Service = (typeof RKE2_SERVICES)[number];
export type RkeService = (typeof RKE_SERVICES)[number];
export type ServiceName = Rke2Service | RkeService;

export const SERVICES_BY_DISTRIBUTION: Record<Distribution, readonly string[]> = {
  rke2: RKE2_SERVICES,
  rke: RKE_SERVICES,
};

// Which roles a service is relevant to: a node is touched by a single-service
// rotation only if one of its roles is listed.
//
// RKE2 follows Rancher's planner (pkg/capr/planner/certificaterotation.go,
// shouldRotateEntry). Rancher lists `supervisor` for no role, which means a
// Rancher rotation of `supervisor` alone restarts nothing; the supervisor client
// certificate only exists on servers, so we treat it as relevant to the server
// roles instead of silently doing nothing.
//
// RKE: etcd certificates live on etcd nodes; the control-plane certificates on
// control-plane nodes; kube-node (kubelet) and kube-proxy on every node.
export const SERVICE_ROLES: Record<Distribution, Record<string, readonly NodeRole[]>> = {
  rke2: {
    'rke2-server': ['worker', 'controlplane', 'etcd'],
    'api-server': ['worker', 'controlplane'],
    kubelet: ['worker', 'controlplane', 'etcd'],
    'kube-proxy': ['worker', 'controlplane'],
    'auth-proxy': ['worker', 'controlplane'],
    'controller-manager': ['controlplane'],
    scheduler: ['controlplane'],
    'rke2-controller': ['controlplane'],
    admin: ['controlplane'],
    'cloud-controller': ['controlplane'],
    etcd: ['etcd'],
    supervisor: ['controlplane', 'etcd'],
  },
  rke: {
    etcd: ['etcd'],
    'kube-apiserver': ['controlplane'],
    'kube-controller-manager': ['controlplane'],
    'kube-scheduler': ['controlplane'],
    kubelet: ['etcd', 'controlplane', 'worker'],
    'kube-proxy': ['etcd', 'controlplane', 'worker'],
  },
};

export function isDistribution(value: string): value is Distribution {
  return (DISTRIBUTIONS as readonly string[]).includes(value);
}

export function isServiceOf(distribution: Distribution, service: string): boolean {
  return SERVICES_BY_DISTRIBUTION[distribution].includes(service);
}
