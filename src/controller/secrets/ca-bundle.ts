// The caBundle side of a Secret-backed renewal (issue 13 §4), as pure functions
// over the live front objects: the JSON patch that makes every caBundle which
// calls a Service trust a CA, and later the one that drops a CA no longer used.
//
// Why a JSON patch with a `test` op: caBundles are written by others too
// (cert-manager's cainjector, an operator that registers its own webhooks, as
// rancher-webhook does). The `test` makes the API server refuse the write if
// the bundle changed since it was read, so certrotator never overwrites a
// bundle it did not see; the caller reads again and recomputes.
//
// Adding before rolling, removing after: while the pods roll, old and new pods
// serve certificates of different CAs (only when the CA changes: Regenerate),
// and the API server must trust both. Run by target-steps.ts (Trust, Restore).
import { X509Certificate } from 'node:crypto';
import type { FrontKind } from '../../api/secret-targets.js';
import type { ServiceRef } from './discovery.js';

export type JsonPatchOp = { op: 'test' | 'replace' | 'add'; path: string; value: string } | { op: 'remove'; path: string };

interface ServiceCall {
  namespace?: string;
  name?: string;
  port?: number;
}

interface ClientConfig {
  service?: ServiceCall;
  caBundle?: string;
}

/** The live front as the API returns it; only the fields that hold a caBundle. */
export interface LiveFront {
  kind: FrontKind;
  webhooks?: { clientConfig?: ClientConfig }[];
  spec?: {
    service?: ServiceCall;
    caBundle?: string;
    conversion?: { strategy?: string; webhook?: { clientConfig?: ClientConfig } };
  };
}

/** One call of a front to a Service, and where its caBundle is. */
export interface BundleSlot {
  /** The JSON pointer of the caBundle (the API's own field path). */
  path: string;
  service?: ServiceCall;
  /** The caBundle as stored (base64); undefined when empty. */
  b64?: string;
  /** For a webhook configuration: the index of the webhook the call is made for. */
  webhook?: number;
}

/** Where each kind keeps its calls to Services and their caBundles. */
export function bundleSlots(front: LiveFront): BundleSlot[] {
  switch (front.kind) {
    case 'ValidatingWebhookConfiguration':
    case 'MutatingWebhookConfiguration':
      return (front.webhooks ?? []).map((w, i) => ({ path: `/webhooks/${i}/clientConfig/caBundle`, service: w.clientConfig?.service, b64: w.clientConfig?.caBundle, webhook: i }));
    case 'APIService':
      return [{ path: '/spec/caBundle', service: front.spec?.service, b64: front.spec?.caBundle }];
    case 'CustomResourceDefinition': {
      const cfg = front.spec?.conversion?.webhook?.clientConfig;
      return front.spec?.conversion?.strategy === 'Webhook' && cfg ? [{ path: '/spec/conversion/webhook/clientConfig/caBundle', service: cfg.service, b64: cfg.caBundle }] : [];
    }
  }
}

export const calls = (slot: BundleSlot, svc: ServiceRef): boolean => slot.service?.namespace === svc.namespace && slot.service?.name === svc.name;

/** The PEM blocks of a bundle, in order; a block that is not a certificate is kept as it is, never dropped silently. */
function blocksOf(b64: string | undefined): string[] {
  const pem = b64 ? Buffer.from(b64, 'base64').toString('utf8') : '';
  return [...pem.matchAll(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g)].map((m) => `${m[0]}\n`);
}

function sameCertificate(block: string, ca: X509Certificate): boolean {
  try {
    return new X509Certificate(block).raw.equals(ca.raw);
  } catch {
    return false;
  }
}

const encode = (blocks: readonly string[]): string => Buffer.from(blocks.join(''), 'utf8').toString('base64');

function guarded(slot: BundleSlot, next: string): JsonPatchOp[] {
  // A missing caBundle is tested by adding it; `test` on an absent path would fail.
  return slot.b64 === undefined ? [{ op: 'add', path: slot.path, value: next }] : [{ op: 'test', path: slot.path, value: slot.b64 }, { op: 'replace', path: slot.path, value: next }];
}

// Each caBundle of `front` that calls `service`, rewritten by `next` (undefined: leave it as it is).
function rewrite(front: LiveFront, service: ServiceRef, caPem: string, next: (blocks: string[], ca: X509Certificate) => string[] | undefined): JsonPatchOp[] {
  const ca = new X509Certificate(caPem);
  return bundleSlots(front)
    .filter((slot) => calls(slot, service))
    .flatMap((slot) => {
      const blocks = next(blocksOf(slot.b64), ca);
      return blocks ? guarded(slot, encode(blocks)) : [];
    });
}

/**
 * Ops that make every caBundle of `front` that calls `service` trust `caPem`,
 * keeping what each already holds. Empty when all of them already do.
 */
export function trustCaPatch(front: LiveFront, service: ServiceRef, caPem: string): JsonPatchOp[] {
  return rewrite(front, service, caPem, (blocks, ca) => (blocks.some((b) => sameCertificate(b, ca)) ? undefined : [...blocks, ca.toString()]));
}

/**
 * Ops that drop `caPem` from every caBundle of `front` that calls `service`,
 * once nothing it signed is served any more. A bundle that would be left empty
 * is not touched: an empty caBundle makes the API server fall back to its own
 * trust store, which is a different answer, not a smaller one.
 */
export function dropCaPatch(front: LiveFront, service: ServiceRef, caPem: string): JsonPatchOp[] {
  return rewrite(front, service, caPem, (blocks, ca) => {
    const kept = blocks.filter((b) => !sameCertificate(b, ca));
    return kept.length === blocks.length || kept.length === 0 ? undefined : kept;
  });
}
