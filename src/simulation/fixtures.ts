// Lays out realistic node host trees from the catalogs: real CAs and leaves made
// to each distribution's profile, plus the non-certificate files that sit next to
// them (kubeconfigs, tokens, manifests) so tests can prove those stay untouched.
// Made at test time in temp dirs; never committed.
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { allFiles, catalogFor, fillPath } from '../distributions/index.js';
import type { CaFiles, CertFile, Distribution, DistributionCatalog, NodeRole } from '../distributions/types.js';
import { generateKeyPair, encodePrivateKey } from '../pki/keys.js';
import type { SigningCa } from '../pki/ca.js';
import { caFromMaterial, createCa, fillTemplate, issueLeaf, type CaMaterial } from './issue.js';

export interface FixtureNode {
  readonly distribution: Distribution;
  readonly root: string;
  readonly roles: readonly NodeRole[];
  readonly nodeName: string;
  readonly nodeIP: string;
  // Host-relative, as the catalogs use it.
  readonly dataDir: string;
  // RKE2 agents: the server tree whose supervisor signs this node's certificates.
  readonly supervisorRoot?: string;
  // RKE2 controller-manager / scheduler serving pairs: made by the component,
  // self-signed (before k3s PR #12285, the default), or by k3s signed with server-ca.
  readonly certDirSignedBy?: CertDirSigner;
}

export type CertDirSigner = 'self' | 'distribution';

export interface FixtureOptions {
  readonly nodeName: string;
  readonly nodeIP: string;
  readonly roles: readonly NodeRole[];
  // CA material to reuse (one cluster, several nodes), keyed by CA cert path.
  readonly cas?: ReadonlyMap<string, CaMaterial>;
  readonly supervisorRoot?: string;
  // RKE: the IPs of all etcd nodes (each etcd node holds every kube-etcd-<ip> pair).
  readonly etcdIPs?: readonly string[];
  // Optional files to create (Rancher cert-dir certs, RKE kubelet serving certs).
  readonly withOptional?: boolean;
  readonly certDirSignedBy?: CertDirSigner;
}

export function templateVars(node: { nodeName: string; nodeIP: string; dataDir: string }): Record<string, string> {
  return {
    dataDir: node.dataDir,
    nodeName: node.nodeName,
    nodeIP: node.nodeIP,
    nodeIPDashes: node.nodeIP.replace(/[.:]/g, '-'),
    unix: String(Math.floor(Date.now() / 1000)),
  };
}

export async function writeHostFile(root: string, rel: string, data: string | Buffer, mode: number): Promise<void> {
  const abs = join(root, rel);
  await fs.mkdir(dirname(abs), { recursive: true, mode: 0o755 });
  await fs.writeFile(abs, data, { mode });
  await fs.chmod(abs, mode);
}

export async function readCa(root: string, files: CaFiles): Promise<SigningCa> {
  const [cert, key] = await Promise.all([fs.readFile(join(root, files.cert), 'utf8'), fs.readFile(join(root, files.key), 'utf8')]);
  return caFromMaterial({ certPem: cert, keyPem: key }, files.cert);
}

// dynamiclistener's file cache: a Secret serialised as JSON.
export function dynamicListenerJson(certPem: string, keyPem: string): string {
  return JSON.stringify({
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: { name: 'rke2-serving', namespace: 'kube-system', annotations: { 'listener.cattle.io/cn-127.0.0.1': '127.0.0.1' } },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(certPem).toString('base64'), 'tls.key': Buffer.from(keyPem).toString('base64') },
  });
}

// The self-signed pair kube-controller-manager / kube-scheduler write to --cert-dir:
// a throwaway "<host>-ca@<ts>" CA and a serving leaf, both in the .crt.
export async function selfSignedCertDirPair(spec: CertFile, vars: Record<string, string>): Promise<{ certPem: string; keyPem: string }> {
  const ca = await caFromMaterial(await createCa(`${vars.nodeIP}-ca@${vars.unix}`, spec.keyAlgorithm, spec.keyEncoding));
  return issueLeaf({ template: fillTemplate(spec.template!, vars), ca, validity: { days: 365, notBefore: 'one-hour-back-clamped-to-ca' }, algorithm: spec.keyAlgorithm, encoding: spec.keyEncoding, chained: true });
}

// The pair k3s writes for them since PR #12285: signed by server-ca, chain after
// the leaf, the catalog's validity (365 days unless CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS).
export async function distributionSignedCertDirPair(
  spec: CertFile,
  vars: Record<string, string>,
  caAt: (files: CaFiles) => Promise<SigningCa>,
): Promise<{ certPem: string; keyPem: string }> {
  const r = spec.renewal;
  if (r.kind !== 'remove-to-regenerate' || !r.distributionSigned) throw new Error(`${spec.id}: the catalog names no CA that signs it`);
  return issueLeaf({
    template: fillTemplate(r.distributionSigned.template, vars),
    ca: await caAt(r.distributionSigned.ca),
    validity: spec.validity,
    algorithm: spec.keyAlgorithm,
    encoding: spec.keyEncoding,
    chained: spec.chained,
  });
}

// Writes one catalog file as the distribution would have made it.
export async function materialise(
  catalog: DistributionCatalog,
  root: string,
  spec: CertFile,
  vars: Record<string, string>,
  caAt: (files: CaFiles) => Promise<SigningCa>,
  supervisorRoot: string,
  certMode = 0o644,
  certDirSignedBy: CertDirSigner = 'self',
): Promise<void> {
  const cert = spec.cert && fillPath(spec.cert, vars);
  const key = spec.key && fillPath(spec.key, vars);
  const r = spec.renewal;
  const leaf = async (ca: SigningCa) =>
    issueLeaf({ template: fillTemplate(spec.template!, vars), ca, validity: spec.validity, algorithm: spec.keyAlgorithm, encoding: spec.keyEncoding, chained: spec.chained });
  switch (r.kind) {
    case 'sign': {
      const m = await leaf(await caAt(r.ca));
      await writeHostFile(root, key!, m.keyPem, 0o600);
      await writeHostFile(root, cert!, m.certPem, certMode);
      return;
    }
    case 'new-key': {
      const keys = await generateKeyPair(spec.keyAlgorithm);
      await writeHostFile(root, key!, encodePrivateKey(keys, spec.keyEncoding), 0o600);
      return;
    }
    case 'reissued-on-start': {
      // What the supervisor hands out: a copy of its own pair, or a fresh one for this node.
      const signerCert = await fs.readFile(join(supervisorRoot, fillPath(r.signer.cert, vars)));
      await writeHostFile(root, fillPath(r.ca, vars), signerCert, 0o644);
      if (r.copyOf) {
        const src = fillPath(r.copyOf, vars);
        await writeHostFile(root, cert!, await fs.readFile(join(supervisorRoot, `${src}.crt`)), 0o600);
        await writeHostFile(root, key!, await fs.readFile(join(supervisorRoot, `${src}.key`)), 0o600);
      } else {
        const m = await leaf(await readCa(supervisorRoot, { cert: fillPath(r.signer.cert, vars), key: fillPath(r.signer.key, vars) }));
        await writeHostFile(root, cert!, m.certPem, 0o600);
        await writeHostFile(root, key!, m.keyPem, 0o600);
      }
      return;
    }
    case 'remove-to-regenerate': {
      const m = certDirSignedBy === 'distribution' ? await distributionSignedCertDirPair(spec, vars, caAt) : await selfSignedCertDirPair(spec, vars);
      await writeHostFile(root, key!, m.keyPem, 0o600);
      await writeHostFile(root, cert!, m.certPem, 0o644);
      return;
    }
    case 'trigger': {
      const m = await leaf(await caAt(r.ca));
      await writeHostFile(root, cert!, dynamicListenerJson(m.certPem, m.keyPem), 0o600);
      return;
    }
  }
  void catalog;
}

async function layOut(distribution: Distribution, root: string, o: FixtureOptions, extraFiles: Record<string, string>): Promise<FixtureNode> {
  const catalog = catalogFor(distribution);
  const node: FixtureNode = {
    distribution,
    root,
    roles: o.roles,
    nodeName: o.nodeName,
    nodeIP: o.nodeIP,
    dataDir: catalog.defaultDataDir,
    ...(o.supervisorRoot ? { supervisorRoot: o.supervisorRoot } : {}),
    ...(o.certDirSignedBy ? { certDirSignedBy: o.certDirSignedBy } : {}),
  };
  const vars = templateVars(node);
  const has = (roles: readonly NodeRole[]) => roles.some((r) => o.roles.includes(r));
  const created = new Map<string, Promise<CaMaterial>>();
  const material = (cn: string, files: CaFiles, spec: (typeof catalog.cas)[number]) => {
    if (!created.has(files.cert)) {
      const given = o.cas?.get(files.cert);
      created.set(files.cert, given ? Promise.resolve(given) : createCa(fillPath(cn, vars), spec.keyAlgorithm, spec.keyEncoding, new Date(Date.now() - 3600_000 * 24)));
    }
    return created.get(files.cert)!;
  };
  for (const ca of catalog.cas) {
    if (!has(ca.roles)) continue;
    const m = await material(ca.cn, ca.files, ca);
    await writeHostFile(root, fillPath(ca.files.cert, vars), m.certPem, 0o644);
    if (has(ca.keyRoles)) await writeHostFile(root, fillPath(ca.files.key, vars), m.keyPem, 0o600);
  }
  const caAt = async (files: CaFiles) => {
    const spec = catalog.cas.find((c) => c.files.cert === files.cert)!;
    return caFromMaterial(await material(spec.cn, spec.files, spec), files.cert);
  };
  for (const spec of allFiles(catalog)) {
    if (!has(spec.roles) || (spec.optional && !o.withOptional)) continue;
    const path = spec.cert ?? spec.key!;
    if (path.includes('{host}')) {
      const ips = spec.id === 'kube-etcd' ? (o.etcdIPs ?? [o.nodeIP]) : [o.nodeIP];
      for (const ip of ips) {
        const v = { ...vars, nodeIP: ip, nodeIPDashes: ip.replace(/[.:]/g, '-'), host: ip.replace(/[.:]/g, '-') };
        await materialise(catalog, root, spec, v, caAt, o.supervisorRoot ?? root, 0o644, o.certDirSignedBy);
      }
    } else {
      await materialise(catalog, root, spec, vars, caAt, o.supervisorRoot ?? root, 0o644, o.certDirSignedBy);
    }
  }
  for (const [rel, content] of Object.entries(extraFiles)) await writeHostFile(root, fillPath(rel, vars), content, rel.endsWith('token') ? 0o600 : 0o644);
  await writeEmbeddedCopies(catalog, root, vars, o.roles);
  return node;
}

export function rke2Server(root: string, o: Omit<FixtureOptions, 'roles'> & { roles?: readonly NodeRole[] }): Promise<FixtureNode> {
  return layOut('rke2', root, { withOptional: true, ...o, roles: o.roles ?? ['etcd', 'controlplane', 'worker'] }, {
    '{dataDir}/server/token': 'K10fixture::server:fixture-token\n',
    '{dataDir}/server/cred/admin.kubeconfig': 'apiVersion: v1\nkind: Config\n# client-certificate: /var/lib/rancher/rke2/server/tls/client-admin.crt\n',
    '{dataDir}/server/db/etcd/config': 'name: {nodeName}\n',
    '{dataDir}/agent/pod-manifests/kube-apiserver.yaml': 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n',
    '{dataDir}/agent/kubelet.kubeconfig': 'apiVersion: v1\nkind: Config\n',
    'etc/rancher/rke2/config.yaml': 'node-ip: {nodeIP}\n',
  });
}

export function rke2Agent(root: string, o: Omit<FixtureOptions, 'roles'> & { supervisorRoot: string }): Promise<FixtureNode> {
  return layOut('rke2', root, { ...o, roles: ['worker'] }, {
    '{dataDir}/agent/kubelet.kubeconfig': 'apiVersion: v1\nkind: Config\n',
    '{dataDir}/agent/kubeproxy.kubeconfig': 'apiVersion: v1\nkind: Config\n',
    'etc/rancher/rke2/config.yaml': 'server: https://127.0.0.1:9345\nnode-ip: {nodeIP}\n',
  });
}

export function rkeNode(root: string, o: FixtureOptions): Promise<FixtureNode> {
  const kubecfg = (name: string) => `apiVersion: v1\nkind: Config\nusers:\n- name: user\n  user:\n    client-certificate: /etc/kubernetes/ssl/${name}.pem\n    client-key: /etc/kubernetes/ssl/${name}-key.pem\n`;
  return layOut('rke', root, o, {
    'etc/kubernetes/ssl/kubecfg-kube-node.yaml': kubecfg('kube-node'),
    'etc/kubernetes/ssl/kubecfg-kube-proxy.yaml': kubecfg('kube-proxy'),
    ...(o.roles.includes('controlplane')
      ? {
          'etc/kubernetes/ssl/kubecfg-kube-controller-manager.yaml': kubecfg('kube-controller-manager'),
          'etc/kubernetes/ssl/kubecfg-kube-scheduler.yaml': kubecfg('kube-scheduler'),
          'etc/kubernetes/audit-policy.yaml': 'apiVersion: audit.k8s.io/v1\nkind: Policy\n',
        }
      : {}),
  });
}

// What the service writes at start for every catalog file it embeds elsewhere:
// RKE2's admin kubeconfig (k3s pkg/server/server.go writeKubeConfig →
// clientaccess.WriteClientKubeConfig: server-ca, client-admin.crt/.key as *-data,
// cluster/user/context "default", mode 0600).
export async function writeEmbeddedCopies(catalog: DistributionCatalog, root: string, vars: Record<string, string>, roles: readonly NodeRole[]): Promise<void> {
  for (const spec of allFiles(catalog)) {
    if (!spec.embeddedIn || !spec.roles.some((r) => roles.includes(r)) || spec.renewal.kind !== 'sign') continue;
    for (const copy of spec.embeddedIn) {
      await writeKubeconfig(root, fillPath(copy.path, vars), { cert: fillPath(spec.cert!, vars), key: fillPath(spec.key!, vars) }, fillPath(copy.serverCa, vars));
    }
  }
}

/** A kubeconfig at `path` for the local API server, embedding the client pair and server CA read from the tree (as k3s writes rke2.yaml). */
export async function writeKubeconfig(root: string, path: string, client: { cert: string; key: string }, serverCa: string): Promise<void> {
  const b64 = async (rel: string) => (await fs.readFile(join(root, rel))).toString('base64');
  const kubeconfig = [
    'apiVersion: v1',
    'clusters:',
    '- cluster:',
    `    certificate-authority-data: ${await b64(serverCa)}`,
    '    server: https://127.0.0.1:6443',
    '  name: default',
    'contexts:',
    '- context:',
    '    cluster: default',
    '    user: default',
    '  name: default',
    'current-context: default',
    'kind: Config',
    'preferences: {}',
    'users:',
    '- name: default',
    '  user:',
    `    client-certificate-data: ${await b64(client.cert)}`,
    `    client-key-data: ${await b64(client.key)}`,
    '',
  ].join('\n');
  await writeHostFile(root, path, kubeconfig, 0o600);
}

// The CA material of a laid-out tree, to build more nodes of the same cluster.
export async function clusterCas(node: FixtureNode): Promise<Map<string, CaMaterial>> {
  const catalog = catalogFor(node.distribution);
  const out = new Map<string, CaMaterial>();
  for (const ca of catalog.cas) {
    const cert = fillPath(ca.files.cert, { dataDir: node.dataDir });
    const key = fillPath(ca.files.key, { dataDir: node.dataDir });
    try {
      out.set(ca.files.cert, { certPem: await fs.readFile(join(node.root, cert), 'utf8'), keyPem: await fs.readFile(join(node.root, key), 'utf8') });
    } catch {
      // A CA whose key is not on this node cannot seed another.
    }
  }
  return out;
}

// An RKE controlplane host of a cluster with external etcd: the files
// cert-deployer writes from cluster.yml services.etcd (pki/services.go
// GenerateExternalEtcdCertificates; pki/util.go getCertKeys deploys them to
// controlplane hosts only): kube-etcd-client.pem/-key.pem, a client pair the
// external etcd's own CA signed, and kube-etcd-client-ca.pem, that CA's
// certificate with no key. Returns that CA, which certrotator never holds.
export async function addExternalEtcdClient(node: FixtureNode, ca?: CaMaterial): Promise<CaMaterial> {
  const catalog = catalogFor('rke');
  const etcdCa = ca ?? (await createCa('external-etcd-ca', { name: 'RSA', modulusLength: 2048 }, 'pkcs1'));
  const leaf = await issueLeaf({
    template: { cn: 'kube-apiserver-etcd-client', eku: ['clientAuth'] },
    ca: await caFromMaterial(etcdCa, 'external-etcd-ca'),
    validity: { days: 365, notBefore: 'ca-not-before' },
    algorithm: { name: 'RSA', modulusLength: 2048 },
    encoding: 'pkcs1',
    chained: false,
  });
  const [client, clientCa] = ['kube-etcd-client', 'kube-etcd-client-ca'].map((n) => catalog.userProvided.find((u) => u.stateEntry === n)!);
  await writeHostFile(node.root, client!.cert, leaf.certPem, 0o600);
  await writeHostFile(node.root, client!.key!, leaf.keyPem, 0o600);
  await writeHostFile(node.root, clientCa!.cert, etcdCa.certPem, 0o600);
  return etcdCa;
}

/**
 * RKE2's client-admin as rke2 issued it `daysAgo` days ago (365-day validity, so
 * expired when daysAgo > 365), signed by a throwaway CA old enough to have signed
 * it: for tests that read expiry (check, inventory), which do not verify the chain.
 */
export async function writeAgedClientAdmin(root: string, daysAgo: number): Promise<void> {
  const spec = catalogFor('rke2').services.admin!.files[0]!;
  const day = 86_400_000;
  const ca = await caFromMaterial(await createCa('rke2-client-ca@1', spec.keyAlgorithm, spec.keyEncoding, new Date(Date.now() - 2 * daysAgo * day)));
  const m = await issueLeaf({ template: spec.template!, ca, validity: spec.validity, algorithm: spec.keyAlgorithm, encoding: spec.keyEncoding, chained: true, now: new Date(Date.now() - daysAgo * day) });
  await writeHostFile(root, 'var/lib/rancher/rke2/server/tls/client-admin.crt', m.certPem, 0o644);
}
