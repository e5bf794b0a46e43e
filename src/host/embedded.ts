// Copies of a certificate embedded in other files that the distribution, not
// certrotator, rewrites (catalog `embeddedIn`): RKE2's admin kubeconfig
// /etc/rancher/rke2/rke2.yaml holds client-admin.crt as client-certificate-data,
// rewritten on every rke2-server start (k3s pkg/server/server.go writeKubeConfig).
import { X509Certificate } from 'node:crypto';
import { fillPath } from '../distributions/index.js';
import type { EmbeddedCopy } from '../distributions/types.js';
import { serialOf } from '../pki/certfile.js';
import type { HostRoot } from './root.js';

export type EmbeddedState =
  | { readonly state: 'current' }
  // Not at the default path: the service may write it elsewhere (--write-kubeconfig).
  | { readonly state: 'absent' }
  | { readonly state: 'stale'; readonly serials: readonly string[] };

// The leaf serials in a kubeconfig's client-certificate-data fields (base64 of a
// PEM, as clientcmd writes them). Only the certificate is decoded; the
// client-key-data next to it is never read.
export function embeddedClientSerials(kubeconfig: string): string[] {
  const serials: string[] = [];
  for (const m of kubeconfig.matchAll(/^\s*client-certificate-data:\s*["']?([A-Za-z0-9+/=]+)["']?\s*$/gm)) {
    try {
      serials.push(serialOf(new X509Certificate(Buffer.from(m[1]!, 'base64'))));
    } catch {
      // Not a certificate: counts as not holding the new one.
    }
  }
  return serials;
}

export async function embeddedState(host: HostRoot, copy: EmbeddedCopy, vars: Record<string, string>, serial: string): Promise<EmbeddedState> {
  const path = fillPath(copy.path, vars);
  if (!(await host.exists(path))) return { state: 'absent' };
  const serials = embeddedClientSerials((await host.readFile(path)).toString('utf8'));
  return serials.includes(serial) ? { state: 'current' } : { state: 'stale', serials };
}
