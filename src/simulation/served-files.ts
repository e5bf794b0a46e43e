// Which file each simulated component serves on which port: written out here
// from the distributions' own flags, NOT taken from the catalog, so that the
// verification step (which reads the catalog's servedOn) is checked against an
// independent statement of the same facts. A wrong port or file in the catalog
// then fails a test instead of being copied into the simulator.
//
// Paths are relative to the host root; {dataDir} is the distribution's data
// dir, {host} the node's IP with dots as dashes (RKE's per-host names).
import type { Distribution, NodeRole } from '../distributions/types.js';

export interface ServedFile {
  readonly port: number;
  /** The node roles on which the component runs. */
  readonly roles: readonly NodeRole[];
  readonly cert: string;
  /** Absent for dynamiclistener's JSON, which holds the key too. */
  readonly key?: string;
  readonly format: 'pem' | 'dynamiclistener-json';
  /** Where the fact comes from. */
  readonly source: string;
}

const SERVER: readonly NodeRole[] = ['etcd', 'controlplane'];
const EVERY: readonly NodeRole[] = ['etcd', 'controlplane', 'worker'];

export const SERVED_FILES: Record<Distribution, readonly ServedFile[]> = {
  rke2: [
    { port: 6443, roles: ['controlplane'], cert: '{dataDir}/server/tls/serving-kube-apiserver.crt', key: '{dataDir}/server/tls/serving-kube-apiserver.key', format: 'pem', source: 'k3s pkg/daemons/control/server.go: --tls-cert-file/--tls-private-key-file = ServingKubeAPICert/Key' },
    { port: 2379, roles: ['etcd'], cert: '{dataDir}/server/tls/etcd/server-client.crt', key: '{dataDir}/server/tls/etcd/server-client.key', format: 'pem', source: 'k3s pkg/etcd/etcd.go: client-transport-security cert-file = ServerETCDCert' },
    { port: 2380, roles: ['etcd'], cert: '{dataDir}/server/tls/etcd/peer-server-client.crt', key: '{dataDir}/server/tls/etcd/peer-server-client.key', format: 'pem', source: 'k3s pkg/etcd/etcd.go: peer-transport-security cert-file = PeerServerClientETCDCert' },
    { port: 9345, roles: SERVER, cert: '{dataDir}/server/tls/dynamic-cert.json', format: 'dynamiclistener-json', source: 'k3s pkg/cluster/https.go: dynamiclistener storage file server/tls/dynamic-cert.json' },
    { port: 10250, roles: EVERY, cert: '{dataDir}/agent/serving-kubelet.crt', key: '{dataDir}/agent/serving-kubelet.key', format: 'pem', source: 'k3s pkg/daemons/agent/agent_linux.go: kubelet --tls-cert-file = ServingKubeletCert' },
    { port: 10257, roles: ['controlplane'], cert: '{dataDir}/server/tls/kube-controller-manager/kube-controller-manager.crt', key: '{dataDir}/server/tls/kube-controller-manager/kube-controller-manager.key', format: 'pem', source: 'k3s pkg/daemons/control/server.go: kube-controller-manager --cert-dir server/tls/kube-controller-manager' },
    { port: 10259, roles: ['controlplane'], cert: '{dataDir}/server/tls/kube-scheduler/kube-scheduler.crt', key: '{dataDir}/server/tls/kube-scheduler/kube-scheduler.key', format: 'pem', source: 'k3s pkg/daemons/control/server.go: kube-scheduler --cert-dir server/tls/kube-scheduler' },
  ],
  rke: [
    { port: 6443, roles: ['controlplane'], cert: '{dataDir}/ssl/kube-apiserver.pem', key: '{dataDir}/ssl/kube-apiserver-key.pem', format: 'pem', source: 'rancher/rke cluster/plan.go getKubeAPIProcess: --tls-cert-file = pki.GetCertPath(pki.KubeAPICertName)' },
    { port: 2379, roles: ['etcd'], cert: '{dataDir}/ssl/kube-etcd-{host}.pem', key: '{dataDir}/ssl/kube-etcd-{host}-key.pem', format: 'pem', source: 'rancher/rke cluster/plan.go getEtcdProcess: --cert-file = GetCertPath(GetCrtNameForHost(host, EtcdCertName))' },
    { port: 2380, roles: ['etcd'], cert: '{dataDir}/ssl/kube-etcd-{host}.pem', key: '{dataDir}/ssl/kube-etcd-{host}-key.pem', format: 'pem', source: 'rancher/rke cluster/plan.go getEtcdProcess: --peer-cert-file, the same pair' },
    { port: 10250, roles: EVERY, cert: '{dataDir}/ssl/kube-kubelet-{host}.pem', key: '{dataDir}/ssl/kube-kubelet-{host}-key.pem', format: 'pem', source: 'rancher/rke cluster/plan.go getKubeletProcess: --tls-cert-file with generate_serving_certificate' },
  ],
};

/**
 * The health endpoints a node's components answer, from the same sources (not
 * the catalog's probes): plain HTTP; HTTPS with the file the port serves (above);
 * or HTTPS with a certificate the component makes in memory at start.
 */
export interface HealthEndpoint {
  readonly component: string;
  readonly port: number;
  readonly roles: readonly NodeRole[];
  readonly tls: 'none' | 'served-file' | 'in-memory';
  readonly source: string;
}

export const HEALTH_ENDPOINTS: Record<Distribution, readonly HealthEndpoint[]> = {
  rke2: [
    { component: 'etcd', port: 2381, roles: ['etcd'], tls: 'none', source: 'k3s pkg/etcd/etcd.go: listen-metrics-urls http://127.0.0.1:2381 (/health)' },
    { component: 'kube-apiserver', port: 6443, roles: ['controlplane'], tls: 'served-file', source: 'kube-apiserver /readyz on its secure port' },
    { component: 'kube-controller-manager', port: 10257, roles: ['controlplane'], tls: 'served-file', source: 'kube-controller-manager --secure-port 10257 /healthz' },
    { component: 'kube-scheduler', port: 10259, roles: ['controlplane'], tls: 'served-file', source: 'kube-scheduler --secure-port 10259 /healthz' },
    { component: 'rke2-supervisor', port: 9345, roles: SERVER, tls: 'served-file', source: 'k3s pkg/server/router.go /ping on the supervisor port' },
    { component: 'kubelet', port: 10248, roles: EVERY, tls: 'none', source: 'kubelet --healthz-port 10248 (plain HTTP)' },
  ],
  rke: [
    { component: 'etcd', port: 2379, roles: ['etcd'], tls: 'served-file', source: 'etcd /health on its client port (rancher/rke services/etcd.go health check)' },
    { component: 'kube-apiserver', port: 6443, roles: ['controlplane'], tls: 'served-file', source: 'kube-apiserver /healthz (rancher/rke services/healthcheck.go)' },
    // RKE sets no --cert-dir pair: they serve a self-signed certificate made in memory.
    { component: 'kube-controller-manager', port: 10257, roles: ['controlplane'], tls: 'in-memory', source: 'rancher/rke services/healthcheck.go: https://localhost:10257/healthz, certificate not checked' },
    { component: 'kube-scheduler', port: 10259, roles: ['controlplane'], tls: 'in-memory', source: 'rancher/rke services/healthcheck.go: https://localhost:10259/healthz, certificate not checked' },
    { component: 'kubelet', port: 10248, roles: EVERY, tls: 'none', source: 'rancher/rke services/kubelet.go: healthz http 10248' },
    { component: 'kube-proxy', port: 10256, roles: EVERY, tls: 'none', source: 'rancher/rke services/proxy.go: healthz http 10256' },
  ],
};
