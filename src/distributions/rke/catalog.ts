// RKE (v1): which /etc/kubernetes/ssl files each `rke cert rotate --service` name
// owns. Source: shared/reference/rke-rke2-kubeadm-certificates.md §2
// (rancher/rke pki/constants.go, pki/services.go, pki/util.go, cluster/plan.go).
import type { CaFiles, CertFile, DistributionCatalog, NodeRole, ServedPort, ServiceEntry, SubjectTemplate } from '../types.js';

const SSL = 'etc/kubernetes/ssl';

// Where RKE's host-network containers listen (rancher/rke v1.6.3 cluster/plan.go,
// with the per-version defaults of kontainer-driver-metadata pkg/rke/k8s_service_options.go):
// - etcd (BuildEtcdProcess): https://0.0.0.0:2379/2380 only when the host's
//   internal_address equals its address; with a separate internal_address (the
//   usual cloud layout) it listens on the internal address alone, so loopback
//   does not reach it. Both cases answer on the node IP, which is also what rke's
//   own health check dials (https://<InternalAddress>:2379/health).
// - kube-apiserver: --bind-address=0.0.0.0 (KDM); kube-controller-manager and
//   kube-scheduler: no --bind-address, so every address; kubelet healthz and
//   kube-proxy healthz (--healthz-bind-address=127.0.0.1): loopback.
const onLoopback = (port: number): ServedPort => ({ port, on: 'loopback' });
const onNodeIP = (port: number): ServedPort => ({ port, on: 'node-ip' });
const EVERY_NODE: readonly NodeRole[] = ['etcd', 'controlplane', 'worker'];

const KUBE_CA: CaFiles = { cert: `${SSL}/kube-ca.pem`, key: `${SSL}/kube-ca-key.pem` };
const REQUESTHEADER_CA: CaFiles = {
  cert: `${SSL}/kube-apiserver-requestheader-ca.pem`,
  key: `${SSL}/kube-apiserver-requestheader-ca-key.pem`,
};

// RKE's own newSignedCert: RSA-2048 (PKCS#1 PEM), NotBefore = the CA's NotBefore,
// NotAfter = now + 10 years (rancher/rke pki/util.go, read at HEAD), leaf-only .pem.
const LEAF = {
  format: 'pem',
  chained: false,
  keyAlgorithm: { name: 'RSA', modulusLength: 2048 },
  keyEncoding: 'pkcs1',
  validity: { days: 3650, notBefore: 'ca-not-before' },
} as const;

// GetAltNames for the apiserver; the etcd certs get the etcd hosts plus the same names.
const KUBERNETES_DNS = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];
const KUBERNETES_IPS = ['{nodeIP}', '127.0.0.1', '10.43.0.1'];

function pem(id: string, name: string, caFiles: CaFiles, template: SubjectTemplate, extra: Partial<CertFile>): CertFile {
  return {
    ...LEAF,
    id,
    cert: `${SSL}/${name}.pem`,
    key: `${SSL}/${name}-key.pem`,
    renewal: { kind: 'sign', ca: caFiles },
    template,
    consumers: [],
    roles: EVERY_NODE,
    ...extra,
  };
}

const FULL_CLUSTER_STATE = {
  kind: 'Secret',
  namespace: 'kube-system',
  name: 'full-cluster-state',
  why: 'RKE keeps every certificate (CA key included) in the cluster state; if it is not renewed too, the next `rke up` deploys the old certificates again (ConfigMap of the same name before RKE 1.6)',
} as const;

const services: Record<string, ServiceEntry> = {
  etcd: {
    name: 'etcd',
    files: [
      // Every etcd node holds every etcd node's kube-etcd-<ip> pair (getCertKeys);
      // each node serves its own on 2379/2380.
      pem(
        'kube-etcd',
        'kube-etcd-{host}',
        KUBE_CA,
        { cn: 'kube-etcd', dns: KUBERNETES_DNS, ips: KUBERNETES_IPS, eku: ['clientAuth', 'serverAuth'] },
        { consumers: ['etcd'], servedOn: [onNodeIP(2379), onNodeIP(2380)], roles: ['etcd'] },
      ),
    ],
  },
  'kube-apiserver': {
    name: 'kube-apiserver',
    files: [
      pem(
        'kube-apiserver',
        'kube-apiserver',
        KUBE_CA,
        { cn: 'kube-apiserver', dns: KUBERNETES_DNS, ips: KUBERNETES_IPS, eku: ['clientAuth', 'serverAuth'] },
        // --tls-cert-file and --kubelet-client-certificate (cluster/plan.go)
        { consumers: ['kube-apiserver'], servedOn: [onLoopback(6443)], roles: ['controlplane'] },
      ),
    ],
  },
  'kube-controller-manager': {
    name: 'kube-controller-manager',
    files: [
      pem('kube-controller-manager', 'kube-controller-manager', KUBE_CA, { cn: 'system:kube-controller-manager', eku: ['clientAuth'] }, {
        consumers: ['kube-controller-manager'],
        roles: ['controlplane'],
      }),
    ],
  },
  'kube-scheduler': {
    name: 'kube-scheduler',
    files: [
      pem('kube-scheduler', 'kube-scheduler', KUBE_CA, { cn: 'system:kube-scheduler', eku: ['clientAuth'] }, {
        consumers: ['kube-scheduler'],
        roles: ['controlplane'],
      }),
    ],
  },
  'kube-proxy': {
    name: 'kube-proxy',
    files: [pem('kube-proxy', 'kube-proxy', KUBE_CA, { cn: 'system:kube-proxy', eku: ['clientAuth'] }, { consumers: ['kube-proxy'] })],
  },
  kubelet: {
    name: 'kubelet',
    files: [
      // One kube-node pair shared by all nodes; the apiserver also uses it as its
      // etcd client certificate (--etcd-certfile), so it restarts too.
      pem('kube-node', 'kube-node', KUBE_CA, { cn: 'system:node', o: ['system:nodes'], eku: ['clientAuth'] }, {
        consumers: ['kubelet', 'kube-apiserver'],
      }),
      // Only with services.kubelet.generate_serving_certificate: true.
      pem(
        'kube-kubelet',
        'kube-kubelet-{host}',
        KUBE_CA,
        { cn: 'kube-kubelet-{nodeIPDashes}', ips: ['{nodeIP}'], eku: ['clientAuth', 'serverAuth'] },
        // Its SANs are the node's addresses only: the API server dials the node IP.
        { consumers: ['kubelet'], servedOn: [{ port: 10250, on: 'node-ip' }], optional: true },
      ),
    ],
  },
};

export const rkeCatalog: DistributionCatalog = {
  distribution: 'rke',
  defaultDataDir: 'etc/kubernetes',
  services,
  // Regenerated only when every service is rotated (rke cert rotate with no --service).
  allOnlyFiles: [
    pem('kube-apiserver-proxy-client', 'kube-apiserver-proxy-client', REQUESTHEADER_CA, { cn: 'kube-apiserver-proxy-client', eku: ['clientAuth', 'serverAuth'] }, {
      consumers: ['kube-apiserver'],
      roles: ['controlplane'],
    }),
  ],
  // kube-admin, the cluster-admin identity of the workstation's
  // kube_config_<cluster>.yml: CN kube-admin, O system:masters, clientAuth
  // only, signed by kube-ca (pki/services.go GenerateKubeAdminCertificate),
  // regenerated by a full `rke cert rotate` (GenerateRKEServicesCerts with
  // rotate=true; no --service names it). It is on no host: getCertKeys
  // (pki/util.go) never lists it, so cert-deployer never writes it. It lives
  // in full-cluster-state only, so the controller renews it there when it
  // commits the run, and it never goes into the bundle Secret every agent can
  // read (a cluster-admin key there would let any node become cluster admin).
  // A list of its own, not an allOnlyFiles entry with roles []: allOnlyFiles
  // are what the bundle carries and what hosts plan, check and back up.
  // `cert` is the path RKE records in the entry (ToCertObject), used only to
  // name the state entry.
  stateOnlyFiles: [
    pem('kube-admin', 'kube-admin', KUBE_CA, { cn: 'kube-admin', o: ['system:masters'], eku: ['clientAuth'] }, { roles: [] }),
  ],
  // External etcd (services.etcd.external_urls): pki/services.go
  // GenerateExternalEtcdCertificates copies cluster.yml services.etcd.cert/key
  // into kube-etcd-client and services.etcd.ca_cert into kube-etcd-client-ca
  // (certificate only, no key), and runs with rotate=false on every `rke up`
  // and `rke cert rotate`: RKE never issues them and a rotation cannot renew
  // them (their CA is the external etcd's). getCertKeys (pki/util.go) deploys
  // them to controlplane hosts only; kube-apiserver reads them as
  // --etcd-certfile/--etcd-keyfile/--etcd-cafile (cluster/plan.go). Such a
  // cluster has no etcd hosts (cluster/validation.go: "Cluster can't have both
  // internal and external etcd"). Their names fit kube-etcd-{host}, so without
  // this list they would pass for an etcd node's certificate.
  userProvided: [
    {
      stateEntry: 'kube-etcd-client',
      cert: `${SSL}/kube-etcd-client.pem`,
      key: `${SSL}/kube-etcd-client-key.pem`,
      service: 'etcd',
      source: 'cluster.yml services.etcd.cert/key',
    },
    { stateEntry: 'kube-etcd-client-ca', cert: `${SSL}/kube-etcd-client-ca.pem`, service: 'etcd', source: 'cluster.yml services.etcd.ca_cert' },
  ],
  clusterObjects: [FULL_CLUSTER_STATE],
  cas: [
    // The CA key is stripped on non-controlplane hosts (pki/deploy.go): such hosts cannot sign.
    { files: KUBE_CA, cn: 'kube-ca', keyAlgorithm: LEAF.keyAlgorithm, keyEncoding: 'pkcs1', roles: EVERY_NODE, keyRoles: ['controlplane'] },
    { files: REQUESTHEADER_CA, cn: 'kube-apiserver-requestheader-ca', keyAlgorithm: LEAF.keyAlgorithm, keyEncoding: 'pkcs1', roles: ['controlplane'], keyRoles: ['controlplane'] },
  ],
  // etcd is given time to stop gracefully: on SIGTERM it first waits for its
  // client streams to end (embed.Etcd.Close: up to ReqTimeout = 5 s + 2 ×
  // election-timeout, 15 s with RKE's --election-timeout=5000, and the API
  // servers' watches never end on their own) and only then, in Server.Stop,
  // hands its leadership to a peer. Killed before that — docker's default 10 s,
  // rke's own 5 s (docker/docker.go RestartContainer) — a leader leaves the
  // cluster without one until an election (≥ 5 s of stalled writes; seen on the
  // real-component RKE suite). 30 s covers the 15 s and the transfer.
  restart: [{ whenRoleIn: EVERY_NODE, plan: { kind: 'docker-restart', stopTimeoutSeconds: { etcd: 30 } } }],
  // rke's own health checks (services/healthcheck.go, the URLs from cluster/plan.go):
  // https://localhost with the kube-apiserver pair as the client certificate for
  // the API server (--anonymous-auth=false), kube-node for etcd (its
  // --etcd-certfile identity; services/etcd_util.go), https :10257/:10259 for
  // kube-controller-manager and kube-scheduler (Kubernetes ≥ 1.22; their serving
  // certificates are self-signed in the container, so, as rke, without a CA),
  // plain HTTP for the kubelet's :10248 and kube-proxy's :10256 (KDM binds it to
  // 127.0.0.1). rke skips server verification everywhere; here the certificates
  // RKE issued are verified against kube-ca.
  probes: [
    { component: 'etcd', scheme: 'https', port: 2379, on: 'node-ip', path: '/health', roles: ['etcd'], ca: KUBE_CA.cert, clientCert: { cert: `${SSL}/kube-node.pem`, key: `${SSL}/kube-node-key.pem` } },
    {
      component: 'kube-apiserver',
      scheme: 'https',
      port: 6443,
      on: 'loopback',
      path: '/healthz',
      roles: ['controlplane'],
      ca: KUBE_CA.cert,
      clientCert: { cert: `${SSL}/kube-apiserver.pem`, key: `${SSL}/kube-apiserver-key.pem` },
    },
    { component: 'kube-controller-manager', scheme: 'https', port: 10257, on: 'loopback', path: '/healthz', roles: ['controlplane'] },
    { component: 'kube-scheduler', scheme: 'https', port: 10259, on: 'loopback', path: '/healthz', roles: ['controlplane'] },
    { component: 'kubelet', scheme: 'http', port: 10248, on: 'loopback', path: '/healthz', roles: EVERY_NODE },
    { component: 'kube-proxy', scheme: 'http', port: 10256, on: 'loopback', path: '/healthz', roles: EVERY_NODE },
  ],
  // Beside ssl/, not inside it: RKE's cert-deployer owns ssl/ and every component
  // container mounts it, so old keys must not sit there; same filesystem so a
  // restore is a rename-speed copy. Only files in scope are copied: the kube-ca
  // key is never duplicated.
  backup: { kind: 'files-in-scope', parent: 'etc/kubernetes', prefix: 'ssl-backup-' },
  // {host} never matches a userProvided file: an external-etcd controlplane
  // host's kube-etcd-client*.pem do not make it an etcd host.
  roleMarkers: [
    { role: 'controlplane', path: `${SSL}/kube-apiserver.pem` },
    { role: 'etcd', path: `${SSL}/kube-etcd-{host}.pem` },
  ],
  defaultRoles: ['worker'],
  writableDirs: [SSL, 'etc/kubernetes'],
};
