// A `full-cluster-state` as RKE (v1) writes it, built from simulated RKE host
// trees: every certificate under /etc/kubernetes/ssl with its key (the CA keys
// from a controlplane tree), in desiredState and currentState, serialised the
// way Go's encoding/json does (HTML characters escaped as \u003c etc.), so
// tests can prove an update leaves every other byte alone.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';

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

/** The full-cluster-state text (Go-style JSON) for these trees; controlplane trees first. */
export async function fullClusterStateFromTrees(trees: readonly Tree[]): Promise<string> {
  const bundle = await bundleFromTrees(trees);
  const rkeConfig = { nodes: [], services: { kubeApi: { extraArgs: { 'admission-control-config-file': '<&>' } } }, clusterName: 'sim' };
  return goJson({
    desiredState: { rkeConfig, certificatesBundle: bundle, encryptionConfig: '' },
    currentState: { rkeConfig, certificatesBundle: bundle, encryptionConfig: '' },
  });
}
