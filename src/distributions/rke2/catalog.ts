// RKE2: which files each `rke2 certificate rotate --service` name owns, who signs
// them and how RKE2 picks them up. Source of every fact:
// shared/reference/rke-rke2-kubeadm-certificates.md §1 (k3s pkg/util/services,
// pkg/daemons/control/deps/deps.go, rancher/dynamiclistener cert/*).
import type {
  CaFiles,
  CertFile,
  DistributionCatalog,
  HealthProbe,
  NodeRole,
  ServedPort,
  ServiceEntry,
  SubjectTemplate,
} from '../types.js';

const S = '{dataDir}/server/tls';
const A = '{dataDir}/agent';

// Where each port listens on an RKE2 node (k3s pkg/daemons/control/server.go,
// pkg/etcd/etcd.go; rke2 runs the same components as static pods on the host
// network): kube-apiserver, the supervisor and the kubelet bind every address;
// etcd's client port 127.0.0.1 and the node IP, its peer port the node IP only;
// kube-controller-manager and kube-scheduler 127.0.0.1 only.
const onLoopback = (port: number): ServedPort => ({ port, on: 'loopback' });
const onNodeIP = (port: number): ServedPort => ({ port, on: 'node-ip' });

const SERVER: readonly NodeRole[] = ['etcd', 'controlplane'];
const EVERY_NODE: readonly NodeRole[] = ['etcd', 'controlplane', 'worker'];

const ca = (name: string): CaFiles => ({ cert: `${S}/${name}.crt`, key: `${S}/${name}.key` });
const CLIENT_CA = ca('client-ca');
const SERVER_CA = ca('server-ca');
const REQUEST_HEADER_CA = ca('request-header-ca');
const ETCD_SERVER_CA = ca('etcd/server-ca');
const ETCD_PEER_CA = ca('etcd/peer-ca');

// dynamiclistener: ECDSA P-256 keys written by MakeEllipticPrivateKeyPEM, 365-day
// leaves with NotBefore one hour back (clamped to the CA), .crt = leaf + CA chain.
// The 365 days are NewSignedCert's default (rancher/dynamiclistener cert/cert.go):
// when ExpiresAt is unset (k3s deps.go createClientCertKey never sets it) it reads
// CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS from the process environment with
// strconv.Atoi; an unparsable value is logged and 365 kept. It applies to leaves
// made through NewSignedCert only: not to CAs (NewSelfSignedCACert, 10 years) and
// not to the self-signed cert-dir certificates (client-go, 1 year).
const CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS = 'CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS';
const LEAF = {
  format: 'pem',
  chained: true,
  keyAlgorithm: { name: 'ECDSA', namedCurve: 'P-256' },
  keyEncoding: 'sec1',
  validity: { days: 365, notBefore: 'one-hour-back-clamped-to-ca', daysFromEnv: CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS },
} as const;

// rke2 gets that variable from its unit's environment: rancher/rke2
// bundle/lib/systemd/system/rke2-{server,agent}.service has, in this order,
//   EnvironmentFile=-/etc/default/%N
//   EnvironmentFile=-/etc/sysconfig/%N
//   EnvironmentFile=-/usr/local/lib/systemd/system/%N.env
// and install.sh rewrites /usr/local to /opt/rke2 when it installs the tarball
// there (INSTALL_RKE2_TAR_PREFIX), so the last one is one of two paths. A later
// file overrides an earlier one (systemd). certrotator's own environment is
// deliberately NOT consulted: the agent's pod or an operator's shell is not
// rke2's, and a value rke2 does not have would make our renewals disagree with
// the leaves rke2 signs itself at its next regeneration. Unit drop-ins
// (Environment= in rke2-server.service.d/) are not read.
const envFiles = (unit: string): string[] => [
  `etc/default/${unit}`,
  `etc/sysconfig/${unit}`,
  `usr/local/lib/systemd/system/${unit}.env`,
  `opt/rke2/lib/systemd/system/${unit}.env`,
];

// config.SANs in k3s pkg/cli/server/server.go: 127.0.0.1, ::1, localhost, the node
// name, the node IPs and the first service IP.
const SERVER_SANS = { dns: ['localhost', '{nodeName}'], ips: ['127.0.0.1', '::1', '{nodeIP}', '10.43.0.1'] };
const KUBERNETES_NAMES = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

function signed(
  id: string,
  base: string,
  caFiles: CaFiles,
  template: SubjectTemplate,
  extra: Partial<CertFile> = {},
): CertFile {
  return {
    ...LEAF,
    id,
    cert: `${base}.crt`,
    key: `${base}.key`,
    renewal: { kind: 'sign', ca: caFiles },
    template,
    consumers: ['rke2-server'],
    roles: SERVER,
    ...extra,
  };
}

const client = (cn: string, o?: string[]): SubjectTemplate => ({ cn, o, eku: ['clientAuth'] });

// Agent files are rewritten by rke2 itself at every agent start: kubelet serving
// and client certificates are signed fresh for this node; the kube-proxy and
// rke2-controller pairs are the server's own files handed out as-is ("not unique
// to this node", k3s pkg/agent/config/config.go get(), verified @001a6d94).
function agentFile(id: string, name: string, caFile: string, signer: CaFiles, template: SubjectTemplate, copyOf?: string, extra: Partial<CertFile> = {}): CertFile {
  return {
    ...LEAF,
    id,
    cert: `${A}/${name}.crt`,
    key: `${A}/${name}.key`,
    renewal: { kind: 'reissued-on-start', ca: caFile, signer, ...(copyOf ? { copyOf } : {}) },
    template,
    consumers: ['rke2-agent'],
    roles: EVERY_NODE,
    rewrittenOnEveryStart: true,
    ...extra,
  };
}

const keyOnly = (id: string, path: string): CertFile => ({
  ...LEAF,
  id,
  key: path,
  renewal: { kind: 'new-key' },
  consumers: ['rke2-server'],
  roles: SERVER,
});

// kube-controller-manager / kube-scheduler serving certificates at
// server/tls/<component>/<component>.{crt,key}. Who makes them depends on the
// release, so the engine reads it from the file on disk (host/issuer.ts):
//  - Before k3s PR #12285 (k3s v1.30.13/v1.31.9/v1.32.5/v1.33.1 and the RKE2
//    releases built on them): the component itself, self-signed ("<host>-ca@<ts>"
//    CA + leaf in the .crt) in the --cert-dir Rancher sets; k3s never rotated
//    them (k3s#10176, k3s#12172). Only on Rancher-provisioned nodes: optional.
//  - From those releases: k3s writes them signed by server-ca (leaf + server-ca
//    chain in the .crt, ECDSA P-256, 365 days or CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS,
//    CN = the component, SANs localhost/127.0.0.1/::1) and regenerates them at
//    start when missing (k3s pkg/daemons/control/deps/deps.go createClientCertKey).
// Either way removal regenerates them at start, which is what Rancher does on
// rotation when --cert-dir is set (rancher/rancher pkg/capr/planner/
// certificaterotation.go, `rm -f <certdir>/kube-controller-manager.{crt,key}`):
// the component or k3s makes a new pair. So 'remove-to-regenerate', and checked
// against server-ca whenever the file on disk is signed by it.
function certDirFile(id: string, component: string, port: number): CertFile {
  return {
    ...LEAF,
    // The self-signed kind is client-go's GenerateSelfSignedCertKey (1 year, no env);
    // the server-ca kind is signed by k3s at start, not by certrotator.
    validity: { days: 365, notBefore: 'one-hour-back-clamped-to-ca' },
    id,
    cert: `${S}/${component}/${component}.crt`,
    key: `${S}/${component}/${component}.key`,
    renewal: {
      kind: 'remove-to-regenerate',
      distributionSigned: { ca: SERVER_CA, template: { cn: component, dns: ['localhost'], ips: ['127.0.0.1', '::1'], eku: ['serverAuth'] } },
    },
    template: { cn: `{nodeIP}@{unix}`, dns: ['localhost'], ips: ['127.0.0.1'], eku: ['serverAuth'] },
    consumers: [component],
    servedOn: [onLoopback(port)],
    roles: ['controlplane'],
    optional: true,
  };
}

function certDirProbe(component: string, port: number): HealthProbe {
  const crt = `${S}/${component}/${component}.crt`;
  // Rancher's probe trusts the .crt itself (probe.go replaceCACertAndPortForProbes);
  // when k3s signed it, certrotator trusts server-ca instead, which is stricter.
  return { component, scheme: 'https', port, on: 'loopback', path: '/healthz', roles: ['controlplane'], ca: crt, caOptional: true, caWhenSignedBy: SERVER_CA.cert };
}

const files = (name: string, list: CertFile[], extra: Partial<ServiceEntry> = {}): ServiceEntry => ({
  name,
  files: list,
  ...extra,
});

const services: Record<string, ServiceEntry> = {
  // The admin kubeconfig embeds client-admin.crt/.key and server-ca as *-data and is
  // rewritten unconditionally at every rke2-server start (k3s pkg/server/server.go
  // StartServer → writeKubeConfig → clientaccess.WriteClientKubeConfig), never by
  // `rke2 certificate rotate`. /etc/rancher/rke2/rke2.yaml unless --write-kubeconfig.
  admin: files('admin', [
    signed('client-admin', `${S}/client-admin`, CLIENT_CA, client('system:admin', ['system:masters']), {
      embeddedIn: [{ path: 'etc/rancher/rke2/rke2.yaml', format: 'kubeconfig-client-certificate-data', rewrittenOnStartOf: 'rke2-server', serverCa: SERVER_CA.cert }],
    }),
  ]),
  'api-server': files('api-server', [
    signed('client-kube-apiserver', `${S}/client-kube-apiserver`, CLIENT_CA, client('system:apiserver', ['system:masters'])),
    signed(
      'serving-kube-apiserver',
      `${S}/serving-kube-apiserver`,
      SERVER_CA,
      { cn: 'kube-apiserver', dns: [...KUBERNETES_NAMES, ...SERVER_SANS.dns], ips: SERVER_SANS.ips, eku: ['serverAuth'] },
      { servedOn: [onLoopback(6443)], roles: ['controlplane'] },
    ),
  ]),
  'controller-manager': files('controller-manager', [
    signed('client-controller', `${S}/client-controller`, CLIENT_CA, client('system:kube-controller-manager')),
    certDirFile('kube-controller-manager-cert-dir', 'kube-controller-manager', 10257),
  ]),
  scheduler: files('scheduler', [
    signed('client-scheduler', `${S}/client-scheduler`, CLIENT_CA, client('system:kube-scheduler')),
    certDirFile('kube-scheduler-cert-dir', 'kube-scheduler', 10259),
  ]),
  'cloud-controller': files('cloud-controller', [
    signed('client-rke2-cloud-controller', `${S}/client-rke2-cloud-controller`, CLIENT_CA, client('rke2-cloud-controller-manager')),
  ]),
  etcd: files('etcd', [
    signed('etcd-client', `${S}/etcd/client`, ETCD_SERVER_CA, client('etcd-client')),
    signed(
      'etcd-server-client',
      `${S}/etcd/server-client`,
      ETCD_SERVER_CA,
      { cn: 'etcd-server', dns: ['kine.sock', ...SERVER_SANS.dns], ips: SERVER_SANS.ips, eku: ['serverAuth', 'clientAuth'] },
      { servedOn: [onLoopback(2379)], roles: ['etcd'] },
    ),
    signed(
      'etcd-peer-server-client',
      `${S}/etcd/peer-server-client`,
      ETCD_PEER_CA,
      { cn: 'etcd-peer', dns: ['kine.sock', ...SERVER_SANS.dns], ips: SERVER_SANS.ips, eku: ['serverAuth', 'clientAuth'] },
      { servedOn: [onNodeIP(2380)], roles: ['etcd'] },
    ),
  ]),
  'auth-proxy': files('auth-proxy', [
    signed('client-auth-proxy', `${S}/client-auth-proxy`, REQUEST_HEADER_CA, client('system:auth-proxy')),
  ]),
  // Added to rke2 in 2024 (rke2#5652 / k3s#9831); older tooling forgets it.
  supervisor: files('supervisor', [
    signed('client-supervisor', `${S}/client-supervisor`, CLIENT_CA, client('system:rke2-supervisor', ['system:masters'])),
  ]),
  // The supervisor listener (:9345) certificate is dynamiclistener's: it cannot
  // be edited on disk because the listener also keeps it in a Secret and would
  // write the old one back. rke2 writes a trigger and the listener regenerates.
  'rke2-server': files(
    'rke2-server',
    [
      {
        ...LEAF,
        id: 'dynamic-cert',
        cert: `${S}/dynamic-cert.json`,
        format: 'dynamiclistener-json',
        renewal: { kind: 'trigger', trigger: `${S}/dynamic-cert-regenerate`, ca: SERVER_CA },
        template: { cn: 'rke2', o: ['rke2'], dns: [...KUBERNETES_NAMES, ...SERVER_SANS.dns], ips: SERVER_SANS.ips, eku: ['serverAuth'] },
        consumers: ['rke2-server'],
        servedOn: [onLoopback(9345)],
        roles: SERVER,
      },
    ],
    {
      clusterObjects: [
        {
          kind: 'Secret',
          namespace: 'kube-system',
          name: 'rke2-serving',
          tls: true,
          why: 'dynamiclistener stores the supervisor certificate here too; after the regenerate it must hold the new certificate or a restart restores the old one (rke2#4372, k3s#3144)',
        },
      ],
    },
  ),
  'rke2-controller': files('rke2-controller', [
    signed('client-rke2-controller', `${S}/client-rke2-controller`, CLIENT_CA, client('system:rke2-controller')),
    agentFile('agent-client-rke2-controller', 'client-rke2-controller', `${A}/client-ca.crt`, CLIENT_CA, client('system:rke2-controller'), `${S}/client-rke2-controller`),
  ]),
  kubelet: files('kubelet', [
    keyOnly('server-client-kubelet-key', `${S}/client-kubelet.key`),
    keyOnly('server-serving-kubelet-key', `${S}/serving-kubelet.key`),
    agentFile('agent-client-kubelet', 'client-kubelet', `${A}/client-ca.crt`, CLIENT_CA, client('system:node:{nodeName}', ['system:nodes'])),
    agentFile(
      'agent-serving-kubelet',
      'serving-kubelet',
      `${A}/server-ca.crt`,
      SERVER_CA,
      { cn: '{nodeName}', dns: ['{nodeName}', 'localhost'], ips: ['127.0.0.1', '{nodeIP}'], eku: ['serverAuth'] },
      undefined,
      { servedOn: [onLoopback(10250)] },
    ),
  ]),
  'kube-proxy': files('kube-proxy', [
    signed('client-kube-proxy', `${S}/client-kube-proxy`, CLIENT_CA, client('system:kube-proxy')),
    agentFile('agent-client-kube-proxy', 'client-kube-proxy', `${A}/client-ca.crt`, CLIENT_CA, client('system:kube-proxy'), `${S}/client-kube-proxy`),
  ]),
};

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export const rke2Catalog: DistributionCatalog = {
  distribution: 'rke2',
  defaultDataDir: 'var/lib/rancher/rke2',
  services,
  allOnlyFiles: [],
  stateOnlyFiles: [],
  userProvided: [],
  clusterObjects: [],
  cas: [
    { files: CLIENT_CA, cn: 'rke2-client-ca@{unix}', keyAlgorithm: P256, keyEncoding: 'sec1', roles: SERVER, keyRoles: SERVER },
    { files: SERVER_CA, cn: 'rke2-server-ca@{unix}', keyAlgorithm: P256, keyEncoding: 'sec1', roles: SERVER, keyRoles: SERVER },
    { files: REQUEST_HEADER_CA, cn: 'rke2-request-header-ca@{unix}', keyAlgorithm: P256, keyEncoding: 'sec1', roles: SERVER, keyRoles: SERVER },
    { files: ETCD_SERVER_CA, cn: 'etcd-server-ca@{unix}', keyAlgorithm: P256, keyEncoding: 'sec1', roles: SERVER, keyRoles: SERVER },
    { files: ETCD_PEER_CA, cn: 'etcd-peer-ca@{unix}', keyAlgorithm: P256, keyEncoding: 'sec1', roles: SERVER, keyRoles: SERVER },
  ],
  restart: [
    // rke2-docs: stop rke2-server, rotate, start. force-restart makes rke2 delete the
    // control-plane static pod manifests and clean their old pods at start
    // (rancher/rke2 pkg/rke2/rke2_linux.go), so they come back with the new files.
    { whenRoleIn: SERVER, plan: { kind: 'systemd-stop-start', unit: 'rke2-server', markerFiles: ['{dataDir}/force-restart'] } },
    // Rancher's worker rotation is only `systemctl restart rke2-agent` (capr planner).
    { whenRoleIn: ['worker'], plan: { kind: 'systemd-restart', unit: 'rke2-agent' } },
  ],
  // Rancher's rotation probes (rancher/rancher pkg/capr/planner/probe.go), all on
  // 127.0.0.1: kube-apiserver with the client-kube-apiserver pair (anonymous
  // requests answer 401) and server-ca; kube-controller-manager and
  // kube-scheduler verified against their own cert-dir certificate (Rancher
  // sets cert-dir; a standalone RKE2 has none, then the probe only asks
  // "healthy?"); etcd's and the kubelet's plain-HTTP health ports. Plus the
  // supervisor's /ping, which answers anonymously, verified against server-ca.
  probes: [
    { component: 'etcd', scheme: 'http', port: 2381, on: 'loopback', path: '/health', roles: ['etcd'] },
    {
      component: 'kube-apiserver',
      scheme: 'https',
      port: 6443,
      on: 'loopback',
      path: '/readyz',
      roles: ['controlplane'],
      ca: SERVER_CA.cert,
      clientCert: { cert: `${S}/client-kube-apiserver.crt`, key: `${S}/client-kube-apiserver.key` },
    },
    certDirProbe('kube-controller-manager', 10257),
    certDirProbe('kube-scheduler', 10259),
    { component: 'rke2-supervisor', scheme: 'https', port: 9345, on: 'loopback', path: '/ping', roles: SERVER, ca: SERVER_CA.cert },
    { component: 'kubelet', scheme: 'http', port: 10248, on: 'loopback', path: '/healthz', roles: EVERY_NODE },
  ],
  backup: { kind: 'copy-dir-plus-flattened', dir: S, fallbackParent: A, prefix: 'tls-' },
  roleMarkers: [
    { role: 'etcd', path: '{dataDir}/server/db/etcd' },
    { role: 'controlplane', path: '{dataDir}/agent/pod-manifests/kube-apiserver.yaml' },
  ],
  defaultRoles: ['worker'],
  // Exactly what a rotation writes: the certificate dirs, the backups beside them
  // (server/tls-<unix>, agent/tls-<unix>, built as .certrotator-partial-*), and the
  // force-restart marker. Not the rest of the data dir.
  //
  // Rancher's RKE2 rotation also runs `rm -rf <datadir>/server/manifests/rke2-*.yaml`
  // (rancher/rancher pkg/capr/planner/certificaterotation.go, via
  // generateManifestRemovalInstruction in instructions.go). certrotator does NOT:
  //  - it came from a snapshot-restore version skew (rancher/rancher#41174; PR #41320
  //    for restore, extended to cert and encryption-key rotation in PR #41459 "to
  //    help ensure system components are restarted on major operations"), not from
  //    anything certificate-related: the bundled charts hold no certificate we rotate
  //    (the CAs, which pods trust, do not change);
  //  - the restart it is meant to cause is what force-restart already does for the
  //    control plane static pods (rancher/rke2 pkg/rke2/rke2_linux.go), and RKE2
  //    re-copies its bundled manifests at every start anyway (rancher/rke2
  //    pkg/bootstrap/bootstrap.go updateManifests), so removing them changes nothing
  //    a rotation needs;
  //  - server/manifests holds users' own manifests too; the agent writes only in the
  //    paths below (catalog.test.ts asserts server/manifests is not among them).
  writableDirs: [S, '{dataDir}/server/tls-*', '{dataDir}/server/.certrotator-partial-*', A, '{dataDir}/force-restart'],
  serviceEnvironment: [
    { unit: 'rke2-server', whenRoleIn: SERVER, files: envFiles('rke2-server') },
    { unit: 'rke2-agent', whenRoleIn: ['worker'], files: envFiles('rke2-agent') },
  ],
};
