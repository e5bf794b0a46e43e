// How RKE (v1) runs a cluster, written out by hand from upstream (not from
// certrotator's catalog, so a catalog error fails a test instead of being
// copied): the certificates RKE makes, the containers' flags, the component
// kubeconfigs. Sources, read at rancher/rke v1.6.3 (40c5dd46) for issue 10:
//   rancher/rke cluster/plan.go      BuildEtcdProcess, BuildKubeAPIProcess,
//                                     BuildKubeControllerProcess, BuildSchedulerProcess,
//                                     BuildKubeletProcess, BuildKubeProxyProcess
//   rancher/rke pki/services.go      what each certificate is (CN, O, SANs, signer)
//   rancher/rke pki/util.go          file names, getCertKeys (which host holds what),
//                                     GetAltNames, newSignedCert (RSA-2048, 10 years)
//   rancher/rke pki/kubeconfig.go    getKubeConfigX509 (component kubeconfigs)
//   rancher/kontainer-driver-metadata pkg/rke/k8s_service_options.go (dev-v2.9):
//                                     the per-version defaults RKE merges in (bind
//                                     address, secure port, leader election, ...)
// RKE builds the flags from a Go map, so their order on a real host is random;
// here it is fixed.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SSL = '/etc/kubernetes/ssl';
const cert = (name: string): string => `${SSL}/${name}.pem`;
const key = (name: string): string => `${SSL}/${name}-key.pem`;
const kubecfg = (name: string): string => `${SSL}/kubecfg-${name}.yaml`;
// GetCrtNameForHost: the address with dots turned into dashes.
export const etcdCertName = (ip: string): string => `kube-etcd-${ip.replace(/\./g, '-')}`;

export interface RkeHost {
  readonly name: string;
  readonly ip: string;
  readonly roles: readonly ('etcd' | 'controlplane' | 'worker')[];
}

export interface Container {
  readonly name: string;
  // A Kubernetes binary from the bin dir, or a stand-in (test/realnode/rke-host-components.ts).
  readonly image: 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kubelet' | 'kube-proxy' | 'nginx-proxy';
  readonly args: readonly string[];
}

const SERVICE_CIDR = '10.43.0.0/16';
const SERVICE_IP = '10.43.0.1';
const KUBERNETES_DNS = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

// ---- certificates ------------------------------------------------------------

interface Leaf {
  readonly name: string;
  readonly cn: string;
  readonly o?: readonly string[];
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  readonly server?: boolean;
  readonly ca: 'kube-ca' | 'kube-apiserver-requestheader-ca';
}

// pki/services.go, per certificate. GetAltNames(hosts): localhost, the
// kubernetes service names, 127.0.0.1, the service IP, each host's address
// (and hostname override), plus cluster.yml authentication.sans.
function altNames(hosts: readonly RkeHost[], extraSans: readonly string[]): { dns: string[]; ips: string[] } {
  return {
    dns: ['localhost', ...KUBERNETES_DNS, ...hosts.map((h) => h.name)],
    ips: ['127.0.0.1', SERVICE_IP, ...hosts.map((h) => h.ip), ...extraSans],
  };
}

export function rkeLeaves(hosts: readonly RkeHost[], extraSans: readonly string[]): Leaf[] {
  const cp = hosts.filter((h) => h.roles.includes('controlplane'));
  const etcd = hosts.filter((h) => h.roles.includes('etcd'));
  return [
    // GenerateKubeAPICertificate: one certificate for every controlplane host.
    { name: 'kube-apiserver', cn: 'kube-apiserver', ...altNames(cp, extraSans), server: true, ca: 'kube-ca' },
    // GenerateEtcdCertificates: one per etcd host, each naming every etcd host.
    ...etcd.map((h): Leaf => ({ name: etcdCertName(h.ip), cn: 'kube-etcd', ...altNames(etcd, []), server: true, ca: 'kube-ca' })),
    { name: 'kube-node', cn: 'system:node', o: ['system:nodes'], ca: 'kube-ca' },
    { name: 'kube-proxy', cn: 'system:kube-proxy', ca: 'kube-ca' },
    { name: 'kube-controller-manager', cn: 'system:kube-controller-manager', ca: 'kube-ca' },
    { name: 'kube-scheduler', cn: 'system:kube-scheduler', ca: 'kube-ca' },
    { name: 'kube-apiserver-proxy-client', cn: 'kube-apiserver-proxy-client', ca: 'kube-apiserver-requestheader-ca' },
    // GenerateServiceTokenKey: a pair whose key signs service account tokens.
    { name: 'kube-service-account-token', cn: 'kube-service-account-token', ca: 'kube-ca' },
    // GenerateKubeAdminCertificate: never deployed to a host (getCertKeys); only
    // in the cluster state and the workstation's kube_config_cluster.yml.
    { name: 'kube-admin', cn: 'kube-admin', o: ['system:masters'], ca: 'kube-ca' },
  ];
}

// getCertKeys: which host holds which pair (the kube-ca key only on controlplane hosts).
export function heldBy(leaf: Leaf, host: RkeHost): boolean {
  const is = (r: RkeHost['roles'][number]) => host.roles.includes(r);
  if (leaf.name === 'kube-admin') return false;
  if (leaf.name === 'kube-node' || leaf.name === 'kube-proxy') return true;
  if (leaf.name.startsWith('kube-etcd-')) return is('etcd');
  return is('controlplane');
}

export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

// RKE's CAs and leaves are RSA-2048 with PKCS#1 keys ("RSA PRIVATE KEY"), 10
// years, leaf-only PEM. Made with openssl, not with certrotator's engine.
export async function makeCa(cn: string): Promise<PemPair> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'rke-ca-'));
  try {
    await openssl(['genrsa', '-traditional', '-out', 'k.pem', '2048'], dir);
    await openssl(['req', '-x509', '-new', '-key', 'k.pem', '-subj', `/CN=${cn}`, '-days', '3650', '-out', 'c.pem',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign'], dir);
    return { certPem: await fs.readFile(join(dir, 'c.pem'), 'utf8'), keyPem: await fs.readFile(join(dir, 'k.pem'), 'utf8') };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export async function makeLeaf(leaf: Leaf, ca: PemPair): Promise<PemPair> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'rke-leaf-'));
  try {
    await fs.writeFile(join(dir, 'ca.pem'), ca.certPem);
    await fs.writeFile(join(dir, 'ca-key.pem'), ca.keyPem, { mode: 0o600 });
    await openssl(['genrsa', '-traditional', '-out', 'k.pem', '2048'], dir);
    const subj = `/${(leaf.o ?? []).map((o) => `O=${o}/`).join('')}CN=${leaf.cn}`;
    const sans = [...(leaf.dns ?? []).map((d) => `DNS:${d}`), ...(leaf.ips ?? []).map((i) => `IP:${i}`)];
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${leaf.server ? 'clientAuth,serverAuth' : 'clientAuth'}`,
      ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
    ];
    await fs.writeFile(join(dir, 'ext'), ext.join('\n') + '\n');
    await openssl(['req', '-new', '-key', 'k.pem', '-subj', subj, '-out', 'csr'], dir);
    await openssl(['x509', '-req', '-in', 'csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-set_serial', `0x${randomHex(8)}`, '-days', '3650', '-extfile', 'ext', '-out', 'c.pem'], dir);
    return { certPem: await fs.readFile(join(dir, 'c.pem'), 'utf8'), keyPem: await fs.readFile(join(dir, 'k.pem'), 'utf8') };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  b[0]! &= 0x7f;
  return Buffer.from(b).toString('hex');
}

// ---- kubeconfigs -------------------------------------------------------------

// getKubeConfigX509: the local API server (nginx-proxy on hosts without
// kube-apiserver), files by path, nothing embedded.
export function componentKubeconfig(component: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- cluster:',
    '    api-version: v1',
    `    certificate-authority: ${cert('kube-ca')}`,
    '    server: "https://127.0.0.1:6443"',
    '  name: "local"',
    'contexts:',
    '- context:',
    '    cluster: "local"',
    `    user: "${component}-local"`,
    '  name: "local"',
    'current-context: "local"',
    'users:',
    `- name: "${component}-local"`,
    '  user:',
    `    client-certificate: ${cert(component)}`,
    `    client-key: ${key(component)}`,
    '',
  ].join('\n');
}

// The kubeconfigs each host gets (pki/util.go ToCertObject: one per client pair the host holds).
export function kubeconfigsFor(host: RkeHost): string[] {
  const all = ['kube-node', 'kube-proxy'];
  if (host.roles.includes('controlplane')) all.push('kube-controller-manager', 'kube-scheduler', 'kube-apiserver-proxy-client');
  return all;
}

export const kubeconfigPath = (component: string): string => kubecfg(component);

// ---- containers --------------------------------------------------------------

export interface ContainerPaths {
  // Inside the containers on a real host (etcd's data dir is a bind of the host's
  // /var/lib/etcd, the cert-dir is the container's own /var/run/kubernetes);
  // here they are under the node's run dir so nothing lands in this machine's /var.
  readonly etcdDataDir: string;
  readonly certDir: (component: string) => string;
}

export function containersFor(self: RkeHost, hosts: readonly RkeHost[], paths: ContainerPaths): Container[] {
  const etcd = hosts.filter((h) => h.roles.includes('etcd'));
  const cp = hosts.filter((h) => h.roles.includes('controlplane'));
  const out: Container[] = [];
  if (self.roles.includes('etcd')) {
    const own = etcdCertName(self.ip);
    out.push({
      name: 'etcd',
      image: 'etcd',
      args: [
        `--name=etcd-${self.name}`,
        // /var/lib/rancher/etcd/ inside the container (a bind of the host's /var/lib/etcd).
        `--data-dir=${paths.etcdDataDir}`,
        // address == internal_address: listen on every address (BuildEtcdProcess).
        '--listen-client-urls=https://0.0.0.0:2379',
        '--listen-peer-urls=https://0.0.0.0:2380',
        `--advertise-client-urls=https://${self.ip}:2379`,
        `--initial-advertise-peer-urls=https://${self.ip}:2380`,
        '--initial-cluster-token=etcd-cluster-1',
        `--initial-cluster=${etcd.map((h) => `etcd-${h.name}=https://${h.ip}:2380`).join(',')}`,
        '--initial-cluster-state=new',
        `--trusted-ca-file=${cert('kube-ca')}`,
        `--peer-trusted-ca-file=${cert('kube-ca')}`,
        `--cert-file=${cert(own)}`,
        `--key-file=${key(own)}`,
        `--peer-cert-file=${cert(own)}`,
        `--peer-key-file=${key(own)}`,
        '--client-cert-auth=true',
        '--peer-client-cert-auth=true',
        '--election-timeout=5000',
        '--heartbeat-interval=500',
        // Tests only: five nodes share one temp disk on two cores.
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
    });
  }
  if (self.roles.includes('controlplane')) {
    // GetEtcdConnString: this host first when it is an etcd member.
    const etcdServers = [...etcd.filter((h) => h.ip === self.ip), ...etcd.filter((h) => h.ip !== self.ip)].map((h) => `https://${h.ip}:2379`);
    out.push(
      {
        name: 'kube-apiserver',
        image: 'kube-apiserver',
        args: [
          '--allow-privileged=true',
          '--anonymous-auth=false',
          '--api-audiences=unknown',
          `--advertise-address=${self.ip}`,
          '--authorization-mode=Node,RBAC',
          '--bind-address=0.0.0.0',
          '--secure-port=6443',
          `--client-ca-file=${cert('kube-ca')}`,
          '--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,DefaultTolerationSeconds,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota,NodeRestriction,Priority,TaintNodesByCondition,PersistentVolumeClaimResize',
          // The apiserver is etcd's client as kube-node (plan.go: etcdClientCert = kube-node).
          `--etcd-cafile=${cert('kube-ca')}`,
          `--etcd-certfile=${cert('kube-node')}`,
          `--etcd-keyfile=${key('kube-node')}`,
          '--etcd-prefix=/registry',
          `--etcd-servers=${etcdServers.join(',')}`,
          `--kubelet-client-certificate=${cert('kube-apiserver')}`,
          `--kubelet-client-key=${key('kube-apiserver')}`,
          '--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname',
          '--profiling=false',
          `--proxy-client-cert-file=${cert('kube-apiserver-proxy-client')}`,
          `--proxy-client-key-file=${key('kube-apiserver-proxy-client')}`,
          '--requestheader-allowed-names=kube-apiserver-proxy-client',
          `--requestheader-client-ca-file=${cert('kube-apiserver-requestheader-ca')}`,
          '--requestheader-extra-headers-prefix=X-Remote-Extra-',
          '--requestheader-group-headers=X-Remote-Group',
          '--requestheader-username-headers=X-Remote-User',
          '--service-account-issuer=rke',
          `--service-account-key-file=${key('kube-service-account-token')}`,
          `--service-account-signing-key-file=${key('kube-service-account-token')}`,
          '--service-account-lookup=true',
          `--service-cluster-ip-range=${SERVICE_CIDR}`,
          '--service-node-port-range=30000-32767',
          '--storage-backend=etcd3',
          `--tls-cert-file=${cert('kube-apiserver')}`,
          `--tls-private-key-file=${key('kube-apiserver')}`,
        ],
      },
      {
        name: 'kube-controller-manager',
        image: 'kube-controller-manager',
        args: [
          `--kubeconfig=${kubecfg('kube-controller-manager')}`,
          `--authentication-kubeconfig=${kubecfg('kube-controller-manager')}`,
          `--authorization-kubeconfig=${kubecfg('kube-controller-manager')}`,
          // Neither RKE nor KDM sets --bind-address: the default, every address, on :10257.
          `--cert-dir=${paths.certDir('kube-controller-manager')}`,
          '--allocate-node-cidrs=true',
          '--cluster-cidr=10.42.0.0/16',
          `--service-cluster-ip-range=${SERVICE_CIDR}`,
          '--leader-elect=true',
          '--node-monitor-grace-period=40s',
          '--profiling=false',
          `--root-ca-file=${cert('kube-ca')}`,
          `--service-account-private-key-file=${key('kube-service-account-token')}`,
          '--terminated-pod-gc-threshold=1000',
          '--use-service-account-credentials=true',
        ],
      },
      {
        name: 'kube-scheduler',
        image: 'kube-scheduler',
        args: [
          `--kubeconfig=${kubecfg('kube-scheduler')}`,
          `--authentication-kubeconfig=${kubecfg('kube-scheduler')}`,
          `--authorization-kubeconfig=${kubecfg('kube-scheduler')}`,
          `--cert-dir=${paths.certDir('kube-scheduler')}`,
          '--leader-elect=true',
          '--profiling=false',
        ],
      },
    );
  }
  // Every host runs the worker plane (kubelet, kube-proxy); hosts without
  // kube-apiserver reach the API servers through nginx-proxy on 127.0.0.1:6443.
  if (!self.roles.includes('controlplane')) out.push({ name: 'nginx-proxy', image: 'nginx-proxy', args: cp.map((h) => `${h.ip}:6443`) });
  out.push(
    { name: 'kubelet', image: 'kubelet', args: [`--kubeconfig=${kubecfg('kube-node')}`, `--client-ca-file=${cert('kube-ca')}`, `--node-ip=${self.ip}`, `--hostname-override=${self.name}`] },
    { name: 'kube-proxy', image: 'kube-proxy', args: [`--kubeconfig=${kubecfg('kube-proxy')}`, '--healthz-bind-address=127.0.0.1'] },
  );
  return out;
}

export const certPath = cert;
export const keyPath = key;
