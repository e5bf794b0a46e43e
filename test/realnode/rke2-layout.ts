// How RKE2 runs its control plane, written out by hand from upstream (not from
// certrotator's catalog, so a catalog error fails a test instead of being
// copied): the flags of each static pod, the kubeconfigs under server/cred, the
// etcd config file. Sources, read for issue 9 (see the README's "real nodes"):
//   k3s pkg/daemons/control/server.go  apiServer(), controllerManager(), scheduler()
//   k3s pkg/etcd/etcd.go + pkg/daemons/executor  the etcd config (URLs, TLS, timings)
//   k3s pkg/daemons/control/deps/deps.go  file names, server/cred kubeconfigs
//   rancher/rke2 pkg/cli/defaults/defaults.go  6443 on 0.0.0.0, supervisor 9345
//   rancher/rke2 pkg/executor/staticpod/staticpod.go  etcd --config-file, extra args
//   rancher/rancher pkg/capr/planner/planner.go  cert-dir for kcm/scheduler (Rancher-provisioned)
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface ServerIdentity {
  readonly name: string;
  readonly ip: string;
}

export interface StaticPod {
  readonly name: 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';
  readonly args: readonly string[];
}

// Where RKE2 keeps the files (dataDir is absolute here: the node's tree).
export const tls = (dataDir: string, f: string): string => join(dataDir, 'server', 'tls', f);
const cred = (dataDir: string, f: string): string => join(dataDir, 'server', 'cred', f);

// The static pods of one RKE2 server, in the order rke2 starts them.
export function staticPods(dataDir: string, self: ServerIdentity): StaticPod[] {
  const t = (f: string) => tls(dataDir, f);
  return [
    { name: 'etcd', args: [`--config-file=${join(dataDir, 'server', 'db', 'etcd', 'config')}`] },
    {
      name: 'kube-apiserver',
      args: [
        '--allow-privileged=true',
        '--anonymous-auth=false',
        '--api-audiences=https://kubernetes.default.svc.cluster.local,rke2',
        '--authorization-mode=Node,RBAC',
        `--advertise-address=${self.ip}`,
        '--bind-address=0.0.0.0',
        '--secure-port=6443',
        `--cert-dir=${t('temporary-certs')}`,
        `--client-ca-file=${t('client-ca.crt')}`,
        '--enable-admission-plugins=NodeRestriction',
        '--enable-bootstrap-token-auth=true',
        `--etcd-cafile=${t('etcd/server-ca.crt')}`,
        `--etcd-certfile=${t('etcd/client.crt')}`,
        `--etcd-keyfile=${t('etcd/client.key')}`,
        '--etcd-servers=https://127.0.0.1:2379',
        `--kubelet-certificate-authority=${t('server-ca.crt')}`,
        `--kubelet-client-certificate=${t('client-kube-apiserver.crt')}`,
        `--kubelet-client-key=${t('client-kube-apiserver.key')}`,
        '--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname',
        '--profiling=false',
        `--proxy-client-cert-file=${t('client-auth-proxy.crt')}`,
        `--proxy-client-key-file=${t('client-auth-proxy.key')}`,
        '--requestheader-allowed-names=system:auth-proxy',
        `--requestheader-client-ca-file=${t('request-header-ca.crt')}`,
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-username-headers=X-Remote-User',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${t('service.key')}`,
        `--service-account-signing-key-file=${t('service.current.key')}`,
        '--service-cluster-ip-range=10.43.0.0/16',
        '--storage-backend=etcd3',
        `--tls-cert-file=${t('serving-kube-apiserver.crt')}`,
        `--tls-private-key-file=${t('serving-kube-apiserver.key')}`,
      ],
    },
    {
      name: 'kube-controller-manager',
      args: [
        `--kubeconfig=${cred(dataDir, 'controller.kubeconfig')}`,
        `--authentication-kubeconfig=${cred(dataDir, 'controller.kubeconfig')}`,
        `--authorization-kubeconfig=${cred(dataDir, 'controller.kubeconfig')}`,
        '--bind-address=127.0.0.1',
        '--secure-port=10257',
        // Rancher-provisioned clusters: the self-signed serving pair goes here and is what Rancher's probe trusts.
        `--cert-dir=${t('kube-controller-manager')}`,
        `--service-account-private-key-file=${t('service.current.key')}`,
        `--root-ca-file=${t('server-ca.crt')}`,
        // k3s signs with the .nochain copies of the CAs; with self-signed CAs they hold the same certificate.
        `--cluster-signing-kube-apiserver-client-cert-file=${t('client-ca.crt')}`,
        `--cluster-signing-kube-apiserver-client-key-file=${t('client-ca.key')}`,
        `--cluster-signing-kubelet-client-cert-file=${t('client-ca.crt')}`,
        `--cluster-signing-kubelet-client-key-file=${t('client-ca.key')}`,
        `--cluster-signing-kubelet-serving-cert-file=${t('server-ca.crt')}`,
        `--cluster-signing-kubelet-serving-key-file=${t('server-ca.key')}`,
        `--cluster-signing-legacy-unknown-cert-file=${t('server-ca.crt')}`,
        `--cluster-signing-legacy-unknown-key-file=${t('server-ca.key')}`,
        '--controllers=*,tokencleaner',
        '--profiling=false',
        '--use-service-account-credentials=true',
        '--permit-port-sharing=true',
      ],
    },
    {
      name: 'kube-scheduler',
      args: [
        `--kubeconfig=${cred(dataDir, 'scheduler.kubeconfig')}`,
        `--authentication-kubeconfig=${cred(dataDir, 'scheduler.kubeconfig')}`,
        `--authorization-kubeconfig=${cred(dataDir, 'scheduler.kubeconfig')}`,
        '--bind-address=127.0.0.1',
        '--secure-port=10259',
        `--cert-dir=${t('kube-scheduler')}`,
        '--profiling=false',
        '--permit-port-sharing=true',
      ],
    },
  ].map((p) => ({ ...p, name: p.name as StaticPod['name'] }));
}

// server/db/etcd/config as k3s writes it (ETCDConfig.ToConfigFile): clients on
// 127.0.0.1 and the node IP, peers on the node IP (advertised), metrics on
// http://127.0.0.1:2381 only, client and peer certificate auth.
export function etcdConfig(dataDir: string, self: ServerIdentity, peers: readonly ServerIdentity[], state: 'new' | 'existing'): string {
  const t = (f: string) => tls(dataDir, f);
  const lines = [
    `name: ${self.name}`,
    `data-dir: ${join(dataDir, 'server', 'db', 'etcd')}`,
    `listen-client-urls: https://127.0.0.1:2379,https://${self.ip}:2379`,
    `advertise-client-urls: https://${self.ip}:2379`,
    `listen-peer-urls: https://127.0.0.1:2380,https://${self.ip}:2380`,
    `initial-advertise-peer-urls: https://${self.ip}:2380`,
    `initial-cluster: ${peers.map((p) => `${p.name}=https://${p.ip}:2380`).join(',')}`,
    `initial-cluster-state: ${state}`,
    'listen-metrics-urls: http://127.0.0.1:2381',
    'election-timeout: 5000',
    'heartbeat-interval: 500',
    'snapshot-count: 10000',
    'logger: zap',
    'log-outputs: [stderr]',
    'log-level: warn',
    'experimental-initial-corrupt-check: true',
    'client-transport-security:',
    `  cert-file: ${t('etcd/server-client.crt')}`,
    `  key-file: ${t('etcd/server-client.key')}`,
    `  trusted-ca-file: ${t('etcd/server-ca.crt')}`,
    '  client-cert-auth: true',
    'peer-transport-security:',
    `  cert-file: ${t('etcd/peer-server-client.crt')}`,
    `  key-file: ${t('etcd/peer-server-client.key')}`,
    `  trusted-ca-file: ${t('etcd/peer-ca.crt')}`,
    '  client-cert-auth: true',
    // Tests only: the node's disk is a temp dir shared by five nodes on two cores.
    'unsafe-no-fsync: true',
  ];
  return lines.join('\n') + '\n';
}

// A kubeconfig with one cluster and one user. Files are referenced by path or
// embedded as data, as each writer upstream does.
export interface KubeconfigParts {
  readonly server: string;
  readonly ca: { readonly file: string } | { readonly pem: string | Buffer };
  readonly user: { readonly certFile: string; readonly keyFile: string } | { readonly certPem: string | Buffer; readonly keyPem: string | Buffer };
}

export function kubeconfigYaml(k: KubeconfigParts): string {
  const b64 = (d: string | Buffer) => Buffer.from(d).toString('base64');
  const cluster = { server: k.server, ...('file' in k.ca ? { 'certificate-authority': k.ca.file } : { 'certificate-authority-data': b64(k.ca.pem) }) };
  const user =
    'certFile' in k.user
      ? { 'client-certificate': k.user.certFile, 'client-key': k.user.keyFile }
      : { 'client-certificate-data': b64(k.user.certPem), 'client-key-data': b64(k.user.keyPem) };
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'default', cluster }],
    contexts: [{ name: 'default', context: { cluster: 'default', user: 'default' } }],
    'current-context': 'default',
    users: [{ name: 'default', user }],
  });
}

// server/cred/<name>.kubeconfig: the local apiserver, server-ca, and the client
// pair by path (deps.go's kubeconfig template references files, embeds nothing).
export function credKubeconfig(dataDir: string, certBase: string): string {
  return kubeconfigYaml({
    server: 'https://127.0.0.1:6443',
    ca: { file: tls(dataDir, 'server-ca.crt') },
    user: { certFile: tls(dataDir, `${certBase}.crt`), keyFile: tls(dataDir, `${certBase}.key`) },
  });
}

export const CRED_KUBECONFIGS: Readonly<Record<string, string>> = {
  'admin.kubeconfig': 'client-admin',
  'supervisor.kubeconfig': 'client-supervisor',
  'controller.kubeconfig': 'client-controller',
  'scheduler.kubeconfig': 'client-scheduler',
  'api-server.kubeconfig': 'client-kube-apiserver',
  'cloud-controller.kubeconfig': 'client-rke2-cloud-controller',
};

export async function writeCredKubeconfigs(dataDir: string): Promise<void> {
  await fs.mkdir(join(dataDir, 'server', 'cred'), { recursive: true, mode: 0o700 });
  for (const [file, base] of Object.entries(CRED_KUBECONFIGS)) {
    await fs.writeFile(cred(dataDir, file), credKubeconfig(dataDir, base), { mode: 0o600 });
  }
}

// /etc/rancher/rke2/rke2.yaml: rewritten at every server start with the current
// client-admin pair and server-ca embedded (k3s pkg/server/server.go writeKubeConfig).
export async function writeAdminKubeconfig(dataDir: string, file: string): Promise<void> {
  const read = (f: string) => fs.readFile(tls(dataDir, f));
  const text = kubeconfigYaml({
    server: 'https://127.0.0.1:6443',
    ca: { pem: await read('server-ca.crt') },
    user: { certPem: await read('client-admin.crt'), keyPem: await read('client-admin.key') },
  });
  await fs.mkdir(join(file, '..'), { recursive: true });
  await fs.writeFile(file, text, { mode: 0o600 });
}
