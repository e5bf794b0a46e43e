// A `full-cluster-state` as RKE (v1) writes it, built from simulated RKE host
// trees: every certificate under /etc/kubernetes/ssl with its key (the CA keys
// from a controlplane tree), in desiredState and currentState, serialised the
// way Go's encoding/json does (HTML characters escaped as \u003c etc.), so
// tests can prove an update leaves every other byte alone. Plus what is on no
// host: kube-admin (the catalog's stateOnlyFiles), signed by the trees' kube-ca,
// with its kubeconfig embedding the pair as RKE stores it.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { rkeCatalog } from '../distributions/rke/catalog.js';
import { caFromMaterial, fillTemplate, issueLeaf } from './issue.js';

const SSL = 'etc/kubernetes/ssl';

interface Tree {
  readonly root: string;
}

const envName = (name: string): string => name.toUpperCase().replace(/-/g, '_');

/** Go's json.Marshal escapes <, > and & (and U+2028/9); JSON.stringify does not. */
export function goJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** The certificatesBundle from the trees: the first tree holding a pair wins (list controlplane trees first). */
export async function bundleFromTrees(trees: readonly Tree[]): Promise<Record<string, Record<string, string>>> {
  const bundle: Record<string, Record<string, string>> = {};
  for (const t of trees) {
    for (const f of (await fs.readdir(join(t.root, SSL))).sort()) {
      if (!f.endsWith('.pem') || f.endsWith('-key.pem')) continue;
      const name = f.slice(0, -4);
      const certPem = await fs.readFile(join(t.root, SSL, f), 'utf8');
      const keyPem = await fs.readFile(join(t.root, SSL, `${name}-key.pem`), 'utf8').catch(() => undefined);
      const have = bundle[name];
      if (have && (have.keyPEM || !keyPem)) continue;
      const cn = new X509Certificate(certPem).subject.match(/CN=([^\n]*)/)?.[1] ?? name;
      bundle[name] = {
        certificatePEM: certPem,
        keyPEM: keyPem ?? '',
        config: name === 'kube-node' || name === 'kube-proxy' ? `apiVersion: v1\nkind: Config\n# client-certificate: /etc/kubernetes/ssl/${name}.pem <kept>\n` : '',
        name,
        commonName: cn,
        ouName: '',
        envName: envName(name),
        path: `/etc/kubernetes/ssl/${name}.pem`,
        keyEnvName: `${envName(name)}_KEY`,
        keyPath: `/etc/kubernetes/ssl/${name}-key.pem`,
        configEnvName: '',
        configPath: '',
      };
    }
  }
  return bundle;
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

// pki/kubeconfig.go GetKubeConfigX509WithData, as GenerateKubeAdminCertificate
// (pki/services.go) stores it in kube-admin's config.
function adminKubeconfig(server: string, cluster: string, caPem: string, certPem: string, keyPem: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- cluster:
    api-version: v1
    certificate-authority-data: ${b64(caPem)}
    server: "${server}"
  name: "${cluster}"
contexts:
- context:
    cluster: "${cluster}"
    user: "kube-admin-${cluster}"
  name: "${cluster}"
current-context: "${cluster}"
users:
- name: "kube-admin-${cluster}"
  user:
    client-certificate-data: ${b64(certPem)}
    client-key-data: ${b64(keyPem)}`;
}

/** The state-only entries (kube-admin), issued by the bundle's CA; none when the trees hold no CA key. */
async function stateOnlyEntries(bundle: Record<string, Record<string, string>>, cluster: string): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const spec of rkeCatalog.stateOnlyFiles) {
    if (spec.renewal.kind !== 'sign') continue;
    const caName = spec.renewal.ca.cert.slice(spec.renewal.ca.cert.lastIndexOf('/') + 1, -'.pem'.length);
    const ca = bundle[caName];
    if (!ca?.certificatePEM || !ca.keyPEM) continue;
    const m = await issueLeaf({
      template: fillTemplate(spec.template!, {}),
      ca: await caFromMaterial({ certPem: ca.certificatePEM, keyPem: ca.keyPEM }, caName),
      validity: spec.validity,
      algorithm: spec.keyAlgorithm,
      encoding: spec.keyEncoding,
      chained: spec.chained,
    });
    const name = spec.id;
    out[name] = {
      certificatePEM: m.certPem,
      keyPEM: m.keyPem,
      config: adminKubeconfig('https://127.0.0.1:6443', cluster, ca.certificatePEM, m.certPem, m.keyPem),
      name,
      commonName: spec.template!.cn,
      ouName: spec.template!.o?.[0] ?? '',
      envName: envName(name),
      path: `/etc/kubernetes/ssl/${name}.pem`,
      keyEnvName: `${envName(name)}_KEY`,
      keyPath: `/etc/kubernetes/ssl/${name}-key.pem`,
      configEnvName: `KUBECFG_${envName(name)}`,
      configPath: './kube_config_cluster.yml',
    };
  }
  return out;
}

/** The full-cluster-state text (Go-style JSON) for these trees; controlplane trees first. */
export async function fullClusterStateFromTrees(trees: readonly Tree[]): Promise<string> {
  const fromTrees = await bundleFromTrees(trees);
  const bundle = Object.fromEntries(Object.entries({ ...fromTrees, ...(await stateOnlyEntries(fromTrees, 'sim')) }).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const rkeConfig = { nodes: [], services: { kubeApi: { extraArgs: { 'admission-control-config-file': '<&>' } } }, clusterName: 'sim' };
  return goJson({
    desiredState: { rkeConfig, certificatesBundle: bundle, encryptionConfig: '' },
    currentState: { rkeConfig, certificatesBundle: bundle, encryptionConfig: '' },
  });
}
