// What the real components of an RKE2 node (test/realnode) answer to the pairs on
// that node's disk, and what rke2.yaml embeds: the oracles the RKE2 rotation and
// recovery suites share. Paths come from test/realnode/rke2-layout.ts, not from
// certrotator's catalog.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { RealNode } from '../../realnode/cluster.js';
import { tls } from '../../realnode/rke2-layout.js';
import { getTls } from './real-checks.js';
import { pemSerial } from './rotation.js';

/** etcd /health on `n`, asked with `via`'s etcd client pair and trusting `via`'s etcd server CA. */
export const etcdHealth = (n: RealNode, via: RealNode) =>
  getTls(`https://${n.ip}:2379/health`, { cert: tls(via.dataDir, 'etcd/client.crt'), key: tls(via.dataDir, 'etcd/client.key') }, tls(via.dataDir, 'etcd/server-ca.crt'));

/** kube-apiserver /readyz on `n`, asked with `via`'s client-admin pair and trusting `via`'s server CA. */
export const apiReadyz = (n: RealNode, via: RealNode) =>
  getTls(`https://${n.ip}:6443/readyz`, { cert: tls(via.dataDir, 'client-admin.crt'), key: tls(via.dataDir, 'client-admin.key') }, tls(via.dataDir, 'server-ca.crt'));

/** The serial of the client certificate /etc/rancher/rke2/rke2.yaml embeds on `n`. */
export async function embeddedAdminSerial(n: RealNode): Promise<string> {
  const k = parseYaml(readFileSync(n.config.adminKubeconfig, 'utf8')) as { users: { user: Record<string, string> }[] };
  return pemSerial(Buffer.from(k.users[0]!.user['client-certificate-data']!, 'base64').toString('utf8'));
}
