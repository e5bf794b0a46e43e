// What a simulated node's service start does to its certificate files, written
// out here from the distributions' own code, NOT taken from the catalog: the
// catalog's renewal kinds, trigger paths, marker files and rewritten files are
// what the engine acts on, and a simulator that copied them could only agree.
// With this table a wrong trigger path, a forgotten marker or a file the catalog
// thinks is rewritten at start (and is not) fails a test.
//
// Paths are relative to the host root; {dataDir} is the distribution's data dir.
// Certificates a start makes are ECDSA P-256, 365 days, with the signing CA's
// certificate after the leaf, as k3s's and dynamiclistener's are.
import type { Distribution, NodeRole } from '../distributions/types.js';

export interface Subject {
  readonly cn: string;
  readonly o?: readonly string[];
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  readonly eku: readonly ('serverAuth' | 'clientAuth')[];
}

export interface Pair {
  readonly cert: string;
  readonly key: string;
}

export type StartStep =
  /** The start deletes this file (a one-shot marker). */
  | { readonly kind: 'consume-marker'; readonly path: string; readonly source: string }
  /** When `trigger` exists the start removes it and writes a new certificate to `file` (dynamiclistener's JSON Secret). */
  | { readonly kind: 'regenerate-on-trigger'; readonly trigger: string; readonly file: string; readonly ca: Pair; readonly subject: Subject; readonly source: string }
  /**
   * When the pair is missing the start makes a new one: self-signed by the
   * component (before k3s PR #12285) or signed by `distributionCa` (from it),
   * whichever the node runs (FixtureNode.certDirSignedBy).
   */
  | {
      readonly kind: 'regenerate-when-missing';
      readonly pair: Pair;
      readonly selfSigned: Subject;
      readonly distributionCa: Pair;
      readonly distributionSigned: Subject;
      readonly source: string;
    }
  /** Written fresh at every start, signed by the supervisor's `signer` (read on the first server), with the signer's certificate copied to `caCopy`. */
  | { readonly kind: 'reissue'; readonly pair: Pair; readonly signer: Pair; readonly caCopy: string; readonly subject: Subject; readonly source: string }
  /** Written at every start as a copy of the supervisor's own pair (not unique to the node). */
  | { readonly kind: 'copy-from-supervisor'; readonly pair: Pair; readonly from: Pair; readonly signer: Pair; readonly caCopy: string; readonly source: string }
  /** A kubeconfig rewritten at every start embedding `client` and `serverCa` as *-data. */
  | { readonly kind: 'write-kubeconfig'; readonly path: string; readonly client: Pair; readonly serverCa: string; readonly source: string };

export interface StartBehaviour {
  /** The unit (RKE2) or the containers (RKE) a restart request names. */
  readonly unit: string;
  /** The node roles it runs on. */
  readonly roles: readonly NodeRole[];
  readonly steps: readonly StartStep[];
  /** RKE: the containers on nodes of these roles, for `docker restart` requests. */
  readonly containers?: readonly { readonly name: string; readonly roles: readonly NodeRole[] }[];
}

const S = '{dataDir}/server/tls';
const A = '{dataDir}/agent';
const SERVER: readonly NodeRole[] = ['etcd', 'controlplane'];
const EVERY: readonly NodeRole[] = ['etcd', 'controlplane', 'worker'];
const pair = (base: string): Pair => ({ cert: `${base}.crt`, key: `${base}.key` });
const SERVER_CA = pair(`${S}/server-ca`);
const CLIENT_CA = pair(`${S}/client-ca`);

// k3s pkg/agent/config/config.go get(): every agent start (a server runs the agent
// too) asks the supervisor for these and writes them, with the CA beside them.
// Simplification: k3s signs client-kubelet/serving-kubelet for a key the server
// keeps (server/tls/client-kubelet.key, serving-kubelet.key); here each start
// makes a fresh key, which changes the agent's key as a rotation of those does.
const AGENT_FILES: readonly StartStep[] = [
  {
    kind: 'reissue',
    pair: pair(`${A}/client-kubelet`),
    signer: CLIENT_CA,
    caCopy: `${A}/client-ca.crt`,
    subject: { cn: 'system:node:{nodeName}', o: ['system:nodes'], eku: ['clientAuth'] },
    source: 'k3s pkg/server/router.go clientKubeletCert: CN system:node:<node>, O system:nodes',
  },
  {
    kind: 'reissue',
    pair: pair(`${A}/serving-kubelet`),
    signer: SERVER_CA,
    caCopy: `${A}/server-ca.crt`,
    subject: { cn: '{nodeName}', dns: ['{nodeName}', 'localhost'], ips: ['127.0.0.1', '{nodeIP}'], eku: ['serverAuth'] },
    source: 'k3s pkg/server/router.go servingKubeletCert: CN <node>, SANs the node name, localhost, 127.0.0.1 and the node IPs',
  },
  {
    kind: 'copy-from-supervisor',
    pair: pair(`${A}/client-kube-proxy`),
    from: pair(`${S}/client-kube-proxy`),
    signer: CLIENT_CA,
    caCopy: `${A}/client-ca.crt`,
    source: 'k3s pkg/server/router.go fileHandler(ClientKubeProxyCert, ClientKubeProxyKey): the server\'s own pair',
  },
  {
    kind: 'copy-from-supervisor',
    pair: pair(`${A}/client-rke2-controller`),
    from: pair(`${S}/client-rke2-controller`),
    signer: CLIENT_CA,
    caCopy: `${A}/client-ca.crt`,
    source: 'k3s pkg/server/router.go fileHandler(ClientK3sControllerCert, ClientK3sControllerKey): the server\'s own pair',
  },
];

// kube-controller-manager and kube-scheduler serving pairs in --cert-dir.
const certDir = (component: string): StartStep => ({
  kind: 'regenerate-when-missing',
  pair: pair(`${S}/${component}/${component}`),
  selfSigned: { cn: '{nodeIP}@{unix}', dns: ['localhost'], ips: ['{nodeIP}', '127.0.0.1'], eku: ['serverAuth'] },
  distributionCa: SERVER_CA,
  distributionSigned: { cn: component, dns: ['localhost'], ips: ['127.0.0.1', '::1'], eku: ['serverAuth'] },
  source:
    'self-signed: k8s.io/client-go util/cert GenerateSelfSignedCertKeyWithFixtures (CN <host>@<unix>, CA <host>-ca@<unix>, SANs the host, 127.0.0.1, localhost), called when --cert-dir holds no pair; ' +
    'server-ca: k3s pkg/daemons/control/deps/deps.go genServerCerts (since PR #12285), made when missing',
});

export const START_BEHAVIOUR: Record<Distribution, readonly StartBehaviour[]> = {
  rke2: [
    {
      unit: 'rke2-server',
      roles: SERVER,
      steps: [
        { kind: 'consume-marker', path: '{dataDir}/force-restart', source: 'rancher/rke2 pkg/rke2/rke2_linux.go: the force-restart file is removed once the static pods were cleaned' },
        {
          kind: 'regenerate-on-trigger',
          trigger: `${S}/dynamic-cert-regenerate`,
          file: `${S}/dynamic-cert.json`,
          ca: SERVER_CA,
          subject: {
            cn: 'rke2',
            o: ['rke2'],
            dns: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost', '{nodeName}'],
            ips: ['127.0.0.1', '::1', '{nodeIP}', '10.43.0.1'],
            eku: ['serverAuth'],
          },
          source:
            'k3s pkg/cluster/https.go newListener: dynamiclistener with CN/O version.Program and the kubernetes SANs, file storage server/tls/dynamic-cert.json; ' +
            'dynamiclistener regenerates when server/tls/dynamic-cert-regenerate exists (k3s pkg/cluster/https.go, rke2 `certificate rotate`)',
        },
        certDir('kube-controller-manager'),
        certDir('kube-scheduler'),
        ...AGENT_FILES,
        {
          kind: 'write-kubeconfig',
          path: 'etc/rancher/rke2/rke2.yaml',
          client: pair(`${S}/client-admin`),
          serverCa: SERVER_CA.cert,
          source: 'k3s pkg/server/server.go writeKubeConfig: rewritten at every start from client-admin and server-ca',
        },
      ],
    },
    { unit: 'rke2-agent', roles: ['worker'], steps: AGENT_FILES },
  ],
  // RKE: a `docker restart` re-reads the files; nothing is written at start.
  rke: [
    {
      unit: 'docker',
      roles: EVERY,
      steps: [],
      // rancher/rke services/*.go: EtcdContainerName, KubeAPIContainerName, KubeControllerContainerName,
      // SchedulerContainerName, KubeletContainerName, KubeproxyContainerName.
      containers: [
        { name: 'etcd', roles: ['etcd'] },
        { name: 'kube-apiserver', roles: ['controlplane'] },
        { name: 'kube-controller-manager', roles: ['controlplane'] },
        { name: 'kube-scheduler', roles: ['controlplane'] },
        { name: 'kubelet', roles: EVERY },
        { name: 'kube-proxy', roles: EVERY },
      ],
    },
  ],
};
