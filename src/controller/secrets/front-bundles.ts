// The caBundles of a Secrets run's fronts, and which CA signed what a Secret
// holds (issue 13 §4): the pieces target-steps.ts uses to add a CA before
// pods serve what it signed, to take it out again in a rollback, and, once an
// owner that regenerated its pair with a new CA is verified, to drop the old.
// Every write goes through patchBundles: a JSON patch that tests each bundle
// as read, so another writer in between (a cainjector, an owner registering
// its webhooks) is never overwritten.
import type { X509Certificate } from 'node:crypto';
import type { SecretRunTarget } from '../../api/secret-targets.js';
import { statusCode } from '../../kube/client.js';
import type { SecretObject } from './backup.js';
import { bundleSlots, calls, dropCaPatch, trustCaPatch, type JsonPatchOp } from './ca-bundle.js';
import { certificatesIn, decode, issuedBy, servingLeafOf, servingPairOf, type SecretInfo, type ServiceRef } from './discovery.js';
import type { LiveFrontObject, SecretRunCluster } from './target-steps.js';

export function toInfo(s: SecretObject): SecretInfo {
  return { namespace: s.metadata.namespace, name: s.metadata.name, labels: s.metadata.labels ?? {}, annotations: s.metadata.annotations ?? {}, data: s.data ?? {} };
}

/** The serving certificate in a Secret, or undefined when it has none readable. */
export const leafIn = (s: SecretObject): X509Certificate | undefined => servingLeafOf(toInfo(s));

/**
 * The certificate that signed the serving Secret's leaf, among the CA Secret's and
 * the serving Secret's own chain (after the leaf, or its ca.crt). Signatures, not
 * names: an owner's new CA usually has the old one's name.
 */
export function issuerIn(secret: SecretObject, caSecret: SecretObject | undefined, caCertKey: string): X509Certificate | undefined {
  const leaf = leafIn(secret);
  const pair = servingPairOf(toInfo(secret));
  if (!leaf || !pair) return undefined;
  const candidates = [
    ...certificatesIn(decode(caSecret?.data?.[caCertKey])),
    ...certificatesIn(decode(secret.data?.[pair.cert])).slice(1),
    ...certificatesIn(decode(secret.data?.[pair.ca])),
  ];
  return candidates.find((c) => issuedBy(leaf, c));
}

export interface Call {
  service: ServiceRef;
  port: number;
  caBundle?: string;
  webhook?: number;
}

/** Each call of a front into one of the target's Services, with its port and caBundle (ca-bundle.ts's slots). */
export function callsOf(front: LiveFrontObject, services: readonly ServiceRef[]): Call[] {
  return bundleSlots(front).flatMap((slot) => {
    const service = services.find((svc) => calls(slot, svc));
    return service ? [{ service, port: slot.service?.port ?? 443, ...(slot.b64 ? { caBundle: slot.b64 } : {}), ...(slot.webhook !== undefined ? { webhook: slot.webhook } : {}) }] : [];
  });
}

/**
 * Reads the front, computes the patch, applies it. The patch tests each bundle as read, so a
 * write by someone else in between (a cainjector, an operator re-registering its webhooks) is
 * refused with 422; the front is read again and the patch recomputed, a few times, then it fails.
 */
export async function patchBundles(cluster: SecretRunCluster, front: string, opsFor: (live: LiveFrontObject) => JsonPatchOp[]): Promise<'gone' | 'unchanged' | 'patched'> {
  for (let attempt = 1; ; attempt++) {
    const live = await cluster.getFront(front);
    if (!live) return 'gone';
    const ops = opsFor(live);
    if (ops.length === 0) return 'unchanged';
    try {
      await cluster.patchFront(front, ops);
      return 'patched';
    } catch (err) {
      if (statusCode(err) !== 422 || attempt >= 3) throw err;
    }
  }
}

/** Adds `caPem` to every caBundle of the target's fronts that calls its Services and lacks it: the fronts it was added to (with the target's earlier ones), and those that are gone. */
export async function trustInFronts(cluster: SecretRunCluster, t: SecretRunTarget, caPem: string): Promise<{ added: string[]; gone: string[] }> {
  const added: string[] = [...(t.caAddedTo ?? [])];
  const gone: string[] = [];
  for (const front of t.fronts) {
    const patched = await patchBundles(cluster, front, (live) => t.services.flatMap((svc) => trustCaPatch(live, svc, caPem)));
    if (patched === 'gone') gone.push(front);
    if (patched === 'patched' && !added.includes(front)) added.push(front);
  }
  return { added, gone };
}

/** Takes `caPem` out of every caBundle of those fronts that calls the target's Services (never emptying one). */
export async function dropFromFronts(cluster: SecretRunCluster, t: SecretRunTarget, fronts: readonly string[], caPem: string): Promise<void> {
  for (const front of fronts) await patchBundles(cluster, front, (live) => t.services.flatMap((svc) => dropCaPatch(live, svc, caPem)));
}

/**
 * Once an owner's new pair is verified: every CA in the target's caBundles that
 * signed `oldLeaf` and not `newLeaf` is taken out, since no pod serves what it
 * signed any more. The fronts it was taken out of; none when the CA is the same.
 */
export async function dropSupersededCa(cluster: SecretRunCluster, t: SecretRunTarget, oldLeaf: X509Certificate, newLeaf: X509Certificate): Promise<string[]> {
  const trimmed: string[] = [];
  for (const front of t.fronts) {
    const live = await cluster.getFront(front);
    if (!live) continue;
    const bundles = callsOf(live, t.services).flatMap((c) => certificatesIn(decode(c.caBundle)));
    const old = [...new Map(bundles.filter((c) => issuedBy(oldLeaf, c) && !issuedBy(newLeaf, c)).map((c) => [c.fingerprint256, c])).values()];
    for (const ca of old) {
      const patched = await patchBundles(cluster, front, (l) => t.services.flatMap((svc) => dropCaPatch(l, svc, ca.toString())));
      if (patched === 'patched' && !trimmed.includes(front)) trimmed.push(front);
    }
  }
  return trimmed;
}

/** What a backup keeps of a front it deletes: what was configured, not what the API server added. */
export function keptOf(front: LiveFrontObject): object {
  const { metadata, ...rest } = front as LiveFrontObject & { metadata?: { name?: string; labels?: object; annotations?: object } };
  return { ...rest, metadata: { name: metadata?.name, ...(metadata?.labels ? { labels: metadata.labels } : {}), ...(metadata?.annotations ? { annotations: metadata.annotations } : {}) } };
}
