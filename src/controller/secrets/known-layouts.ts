// Where projects keep a webhook's serving pair and its CA: data, not code, so
// a new layout is a row here and the discovery table in the README follows it.
import type { BuiltInSecretTarget } from '../../api/secret-targets.js';
import { GROUP } from '../../api/constants.js';
import type { CaLocation, ServiceRef, SecretInfo } from './discovery.js';

/**
 * The data keys of a serving pair and of its CA, in the order discovery
 * tries them. The first is the kubernetes.io/tls layout (plus ca.crt, as
 * cert-manager and most charts write it); the second is what
 * kube-webhook-certgen (ingress-nginx and many charts) writes; the third and
 * fourth are common in hand-made Secrets.
 */
export const SERVING_PAIR_KEYS = [
  { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt', caKey: 'ca.key' },
  { cert: 'cert', key: 'key', ca: 'ca', caKey: 'ca-key' },
  { cert: 'cert.pem', key: 'key.pem', ca: 'ca.pem', caKey: 'ca-key.pem' },
  { cert: 'server.crt', key: 'server.key', ca: 'ca.crt', caKey: 'ca.key' },
] as const;

/** Every data key discovery reads; cluster-read.ts keeps only these of each Secret. */
export const READ_KEYS: ReadonlySet<string> = new Set(SERVING_PAIR_KEYS.flatMap((k) => [k.cert, k.key, k.ca, k.caKey]));

/** On a serving Secret: where its CA (certificate and key) is, as "namespace/name" or "name" (same namespace). */
export const CA_SECRET_ANNOTATION = `${GROUP}/ca-secret`;

/** The DNS name the API server dials for a Service-backed webhook, APIService or conversion webhook. */
export const serviceDnsName = (svc: ServiceRef): string => `${svc.name}.${svc.namespace}.svc`;

/** cert-manager writes this on every Secret it issues; such a Secret is cert-manager's to renew. */
export const CERT_MANAGER_ANNOTATION = 'cert-manager.io/certificate-name';

export interface BuiltInLayout {
  secret: ServiceRef;
  /** Where the owner keeps its CA (backed up with the Secret: an owner that finds it gone or expired makes a new one). */
  ca: CaLocation;
  /** Fronts (Kind/name) the owner registers when it starts, with its CA as caBundle: the procedure deletes them with the Secret. */
  reregisters: string[];
  /**
   * The owner makes a new certificate at start only when its own expires within
   * this many days (and renews it by itself then); outside it, restarted pods
   * load the same one again, so Regenerate would change nothing.
   */
  reissuesWithinDays: number;
  /** What Regenerate does, in the words of the plan. */
  procedure: string;
}

/**
 * Targets whose owner makes its own certificate, so renewal is "delete and
 * let the owner re-issue" (Rancher's documented procedure for an expired
 * rancher-webhook certificate), done with a backup and verification.
 */
export const BUILT_IN: Record<BuiltInSecretTarget, BuiltInLayout> = {
  'rancher-webhook': {
    secret: { namespace: 'cattle-system', name: 'cattle-webhook-tls' },
    ca: { namespace: 'cattle-system', name: 'cattle-webhook-ca', certKey: 'tls.crt', keyKey: 'tls.key' },
    // Rancher's doc deletes only the mutating one; the validating one of the same name is updated in place by the owner.
    reregisters: ['MutatingWebhookConfiguration/rancher.cattle.io'],
    // dynamiclistener listener.go: ExpirationDaysCheck defaults to 90 (checked when a pod loads the Secret, and every 6 h).
    reissuesWithinDays: 90,
    // rancher/webhook pkg/server/server.go: Secret cattle-webhook-tls (tls.crt = leaf + CA, tls.key),
    // CA Secret cattle-webhook-ca (tls.crt/tls.key), Service rancher-webhook, pods app=rancher-webhook,
    // webhook configurations rancher.cattle.io whose caBundle the leader fills from the CA Secret.
    // dynamiclistener re-creates a deleted leaf Secret from memory while the pod runs, so the pods
    // must be restarted after the delete; the CA is loaded once at start and kept.
    procedure:
      "rancher-webhook issues its own serving certificate from cattle-webhook-ca (Rancher 2.6.3 and later renew it within 90 days of expiry, every 6 h): back up cattle-webhook-tls, delete it and the rancher.cattle.io MutatingWebhookConfiguration, restart the app=rancher-webhook pods so the new one issues a certificate and registers the webhooks again with the CA as caBundle, then verify (Rancher's documented procedure for an expired webhook certificate)",
  },
};

const STEM_SUFFIXES = ['-tls', '-certs', '-cert', '-serving-cert', '-secret'];

/**
 * Where the CA of `secret` may be, in order: the annotation, the Secret
 * itself (ca.crt with ca.key), the built-in layout's CA Secret, then the
 * naming conventions "<name>-ca" and "<name without -tls/-cert…>-ca".
 */
export function caSecretCandidates(secret: SecretInfo, builtIn: BuiltInSecretTarget | undefined): ServiceRef[] {
  const out: ServiceRef[] = [];
  const annotated = secret.annotations[CA_SECRET_ANNOTATION];
  if (annotated) {
    const [a, b] = annotated.split('/');
    out.push(b === undefined ? { namespace: secret.namespace, name: a! } : { namespace: a!, name: b });
  }
  out.push({ namespace: secret.namespace, name: secret.name });
  if (builtIn) out.push(BUILT_IN[builtIn].ca);
  out.push({ namespace: secret.namespace, name: `${secret.name}-ca` });
  for (const suffix of STEM_SUFFIXES) {
    if (secret.name.endsWith(suffix) && secret.name.length > suffix.length) {
      out.push({ namespace: secret.namespace, name: `${secret.name.slice(0, -suffix.length)}-ca` });
    }
  }
  const seen = new Set<string>();
  return out.filter((r) => {
    const k = `${r.namespace}/${r.name}`;
    return !seen.has(k) && (seen.add(k), true);
  });
}
