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
// Since the controller's hot path left client-node (src/kube/kubeconfig.ts,
// transport.ts), this serves what still goes through it: the core reads and
// writes of RKE bundles and Secrets-scope runs, and everything when the
// kubeconfig names a proxy. run.ts applies it when client-node is first
// needed (KubeAccess.onClientNode).
// It also reads the TLS files (CA, client certificate and key) once per
// FILE_TTL_MS instead of on every request: client-node reads all three from
// disk for each call (applyHTTPSOptions), which at 5,000 nodes was a twentieth
// of the controller's CPU. A file replaced on disk (a renewed client
// certificate, a new service-account CA) is picked up within the TTL.
//
import type { KubeConfig } from '@kubernetes/client-node';
import { tlsIdentity as identity } from '../kube/transport.js';

type CreateDispatcher = (cluster: unknown, agentOptions: Record<string, unknown>) => unknown;

/** How long the TLS files read for one request serve the next ones. */
export const FILE_TTL_MS = 10_000;

type HttpsOptions = Record<string, unknown> & { headers?: Record<string, string> };

/** Makes `kc` reuse one connection pool per TLS identity, and its TLS files for FILE_TTL_MS. Returns `kc`. */
export function reuseConnections(kc: KubeConfig, now: () => number = Date.now): KubeConfig {
  const target = kc as unknown as { createDispatcher?: CreateDispatcher; applyHTTPSOptions?: (opts: HttpsOptions) => void };
  const original = target.createDispatcher?.bind(kc);
  if (!original) return kc; // a client-node version without it: nothing to fix
  const pools = new Map<string, unknown>();
  // The identity of the last options seen: the same Buffers (from the cache below) hash the same.
  let last: { ca: unknown; cert: unknown; key: unknown; id: string } | undefined;
  target.createDispatcher = (cluster, agentOptions) => {
    const same = last && last.ca === agentOptions.ca && last.cert === agentOptions.cert && last.key === agentOptions.key;
    if (!same) last = { ca: agentOptions.ca, cert: agentOptions.cert, key: agentOptions.key, id: identity(agentOptions) };
    const key = `${(cluster as { name?: string } | null)?.name ?? ''}|${last!.id}`;
    if (!pools.has(key)) pools.set(key, original(cluster, agentOptions));
    return pools.get(key);
  };
  const readTls = target.applyHTTPSOptions?.bind(kc);
  if (readTls) {
    let cached: { context: string; at: number; opts: HttpsOptions } | undefined;
    target.applyHTTPSOptions = (opts) => {
      const context = kc.getCurrentContext();
      if (!cached || cached.context !== context || now() - cached.at >= FILE_TTL_MS) {
        const fresh: HttpsOptions = {};
        readTls(fresh);
        cached = { context, at: now(), opts: fresh };
      }
      const { headers, ...rest } = cached.opts;
      Object.assign(opts, rest);
      // Headers are added to afterwards (Authorization): each request gets its own object.
      if (headers) opts.headers = { ...opts.headers, ...headers };
    };
  }
  return kc;
}
