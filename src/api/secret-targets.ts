// Secret-backed serving certificates (issue 13): the key pairs that admission
// webhooks, aggregated APIs and CRD conversion webhooks serve from a Secret,
// trusted by the API server through a caBundle.
//
// Why a scope of CertificateRotation and not a kind of its own: a person asks
// for the same thing (renew, restart what serves it, verify, roll back) with
// the same GitOps contract (one generation is one run, kstatus conditions,
// `kubectl get certrotations`, the Argo CD health check), the same knobs
// (nodeTimeout bounds a rollout as it bounds a node, onFailure) and the same
// rule that only one rotation runs at a time: a webhook rolled while the API
// servers restart could not be verified. What differs is the work, so
// `scope: Secrets` has its own controller (src/controller/secrets/) and its
// own status block (status.secretPlan), and the node-run fields stay empty.
import { labelSelectorSchema } from './common.js';
import { s, type Out } from './schema.js';

/** Targets Rancher documents a procedure for; spec.secrets.builtIn. */
export const BUILT_IN_SECRET_TARGETS = ['rancher-webhook'] as const;
export type BuiltInSecretTarget = (typeof BUILT_IN_SECRET_TARGETS)[number];

/** What fronts a Secret-backed serving certificate: the object whose caBundle the API server trusts it by. */
export const FRONT_KINDS = [
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
  'CustomResourceDefinition',
] as const;
export type FrontKind = (typeof FRONT_KINDS)[number];

/**
 * What a rotation would do with one Secret:
 *   RenewInPlace — the CA's key is in the cluster: new key, same subject, SANs and usages, same CA;
 *   Regenerate   — the owner makes its own certificate (rancher-webhook): replace the Secret, let the owner re-issue;
 *   LeaveAlone   — another controller renews it (cert-manager);
 *   CannotRenew  — neither: the reason says what is missing.
 */
export const SECRET_ACTIONS = ['RenewInPlace', 'Regenerate', 'LeaveAlone', 'CannotRenew'] as const;
export type SecretAction = (typeof SECRET_ACTIONS)[number];

/** The most targets status.secretPlan lists (the earliest to expire first); the rest are counted. */
export const MAX_LISTED_SECRET_TARGETS = 100;
/** The most unresolved fronts status.secretPlan lists. */
export const MAX_LISTED_UNRESOLVED = 20;

const dnsName = (description: string) => s.string({ maxLength: 253, description });

export const secretRefSchema = s.object({
  namespace: s.string({ maxLength: 63 }),
  name: dnsName('The Secret that holds the serving pair.'),
});
export type SecretRef = Out<typeof secretRefSchema>;

const names = (what: string) => s.array(dnsName(what), { maxItems: 256 }).with({ 'x-kubernetes-list-type': 'set' }).optional();

/**
 * Which Secret-backed certificates a `scope: Secrets` rotation covers. The
 * first five fields name fronts or Secrets (a target is in scope when any of
 * them names it); with none of them set every discovered target is. The last
 * two narrow whatever was selected.
 */
export const secretTargetsSchema = s
  .object({
    webhookConfigurations: names('A ValidatingWebhookConfiguration or MutatingWebhookConfiguration by name.'),
    apiServices: names('An APIService by name, e.g. v1beta1.metrics.k8s.io.'),
    conversionWebhooks: names('A CustomResourceDefinition whose conversion webhook to cover, by name.'),
    secretRefs: s.array(secretRefSchema, { maxItems: 256 }).optional(),
    builtIn: s
      .array(s.enum(BUILT_IN_SECRET_TARGETS), { maxItems: 8 })
      .with({ 'x-kubernetes-list-type': 'set' })
      .describe("Targets with a known owner and procedure; rancher-webhook: Rancher's webhook, regenerated as Rancher documents.")
      .optional(),
    namespaces: s
      .array(s.string({ maxLength: 63 }), { maxItems: 256 })
      .with({ 'x-kubernetes-list-type': 'set' })
      .describe("Only Secrets in these namespaces.")
      .optional(),
    selector: labelSelectorSchema.describe("Only Secrets with these labels.").optional(),
  })
  .describe('Which Secret-backed serving certificates to cover (scope: Secrets).');
export type SecretTargetsSpec = Out<typeof secretTargetsSchema>;

export const secretTargetSchema = s.object({
  secret: secretRefSchema,
  fronts: s
    .array(s.string({ maxLength: 320, description: 'Kind/name, e.g. ValidatingWebhookConfiguration/policy.example.com.' }), { maxItems: 16 })
    .describe('The objects whose caBundle trusts this certificate.'),
  workload: s
    .string({ maxLength: 320, description: 'Kind/name of the workload whose pods mount the Secret, e.g. Deployment/rancher-webhook.' })
    .optional(),
  notAfter: s.time('When the certificate in the Secret expires.').optional(),
  ca: s
    .string({ maxLength: 320, description: 'Where the signing CA was found (Secret namespace/name and key, or caBundle only), or unknown.' })
    .optional(),
  caKeyAvailable: s.boolean('Whether the CA private key is in the cluster, so the certificate can be renewed in place.'),
  caBundleCurrent: s.boolean("Whether every front's caBundle trusts the certificate in the Secret."),
  action: s.enum(SECRET_ACTIONS),
  reason: s.string({ maxLength: 1024, description: 'Why this action, and for CannotRenew what is missing.' }),
});
export type SecretTargetStatus = Out<typeof secretTargetSchema>;

const count = () => s.int32({ minimum: 0 });

export const secretPlanSchema = s
  .object({
    total: count().describe('Targets in scope.'),
    renewInPlace: count(),
    regenerate: count(),
    leaveAlone: count(),
    cannotRenew: count(),
    targets: s
      .array(secretTargetSchema, { maxItems: MAX_LISTED_SECRET_TARGETS })
      .with({ 'x-kubernetes-list-type': 'atomic' })
      .describe(`The targets in scope, the earliest to expire first; at most ${MAX_LISTED_SECRET_TARGETS} (total counts them all).`),
    unresolved: s
      .array(
        s.object({
          front: s.string({ maxLength: 320, description: 'Kind/name of what could not be followed to a Secret.' }),
          reason: s.string({ maxLength: 1024 }),
        }),
        { maxItems: MAX_LISTED_UNRESOLVED },
      )
      .with({ 'x-kubernetes-list-type': 'atomic' })
      .describe(`Fronts (or named Secrets) that could not be followed to a serving pair, and why; at most ${MAX_LISTED_UNRESOLVED} (unresolvedCount counts them all).`)
      .optional(),
    unresolvedCount: count().optional(),
  })
  .describe('scope: Secrets: what the rotation covers and what it would do with each Secret.');
export type SecretPlanStatus = Out<typeof secretPlanSchema>;
