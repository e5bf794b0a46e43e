// @kubernetes/client-node 2.0.1 builds a NEW undici Agent for every API
// request (KubeConfig.applySecurityAuthentication → createDispatcher), so
// every request pays a fresh TLS handshake with the client certificate, and
// every agent keeps its idle keep-alive socket until GC. For the controller
// that was the difference between ~850 ms and a few ms per hand-off at 500
// nodes, and hundreds of MB of RSS (bench/controller-scale.ts).
//
// We memoise the dispatcher per TLS identity (CA, client cert and key,
// server name): same identity, same connection pool. A rotated client
// certificate (exec plugin, new kubeconfig) gives a new key and a new pool.
// Bearer tokens travel in headers, not in the dispatcher, so a re-read
// service-account token is unaffected.
//
// This belongs in src/kube/client.ts for every component (the agent too);
// it lives here until that file's owner takes it over.
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';

type CreateDispatcher = (cluster: unknown, agentOptions: Record<string, unknown>) => unknown;

function identity(agentOptions: Record<string, unknown>): string {
  const h = createHash('sha256');
  for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername']) {
    h.update(`${k}=${String(agentOptions[k] ?? '')};`);
  }
  return h.digest('hex');
}

/** Makes `kc` reuse one connection pool per TLS identity. Returns `kc`. */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  const target = kc as unknown as { createDispatcher?: CreateDispatcher };
  const original = target.createDispatcher?.bind(kc);
  if (!original) return kc; // a client-node version without it: nothing to fix
  const pools = new Map<string, unknown>();
  target.createDispatcher = (cluster, agentOptions) => {
    const key = `${(cluster as { name?: string } | null)?.name ?? ''}|${identity(agentOptions)}`;
    if (!pools.has(key)) pools.set(key, original(cluster, agentOptions));
    return pools.get(key);
  };
  return kc;
}
