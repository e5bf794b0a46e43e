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

// ---- the run (scope: Secrets, mode: Apply) --------------------------------

/** The most targets one run renews; a larger scope is refused at the start with the count (narrow spec.secrets). */
export const MAX_RUN_SECRET_TARGETS = 100;

/**
 * Where a target is:
 *   Pending     — not started;
 *   Renewing    — its steps are running (status.secretRun.targets[].step is the next one);
 *   Rotated     — renewed, rolled, served and called through the API server; backup deleted;
 *   RollingBack — a step failed; the old Secret, caBundle and pod template are being put back;
 *   RolledBack  — put back as it was; the run stopped here;
 *   Failed      — a step failed and the rollback did not finish: the message says what to restore by hand.
 */
export const SECRET_TARGET_PHASES = ['Pending', 'Renewing', 'Rotated', 'RollingBack', 'RolledBack', 'Failed'] as const;
export type SecretTargetPhase = (typeof SECRET_TARGET_PHASES)[number];

/**
 * The steps of a target (target-steps.ts's STEP_ORDER gives each action's order):
 *   Backup (copy the Secret; for Regenerate its CA Secret and the fronts the
 *   owner registers again too) → Renew (write the new pair: RenewInPlace) or
 *   Remove (delete the Secret and those fronts: Regenerate) → Trust (every
 *   caBundle that fronts it holds the CA) → Roll (patch the pod template) →
 *   Rollout (wait for the workload's own strategy) → Reissued (Regenerate: the
 *   owner has written a new pair and registered its fronts again) → Verify (the
 *   endpoints serve the new serial and the API server's own call through the
 *   front succeeds) → Cleanup (delete the backups). To undo: Restore (the
 *   Secrets and fronts from their backups, the caBundle as it was) → Undo (the
 *   pod template's annotations as they were, so the workload goes back to its
 *   earlier pods) → UndoRollout (wait for that).
 */
export const SECRET_STEPS = ['Backup', 'Renew', 'Remove', 'Trust', 'Roll', 'Rollout', 'Reissued', 'Verify', 'Cleanup', 'Restore', 'Undo', 'UndoRollout'] as const;
export type SecretStep = (typeof SECRET_STEPS)[number];

/** What a run does with a target: renew it with the CA in the cluster, or have its owner make a new one. */
export const SECRET_RUN_ACTIONS = ['RenewInPlace', 'Regenerate'] as const;
export type SecretRunAction = (typeof SECRET_RUN_ACTIONS)[number];

const optionalText = (maxLength: number, description: string) => s.string({ maxLength, description }).optional();

export const secretRunTargetSchema = s.object({
  secret: secretRefSchema,
  workload: s.string({ maxLength: 320, description: 'Kind/name of the workload rolled, e.g. Deployment/policy-webhook.' }),
  fronts: s.array(s.string({ maxLength: 320 }), { maxItems: 16 }).describe('Kind/name of every object whose caBundle trusts it.'),
  services: s.array(secretRefSchema, { maxItems: 16 }).describe('The Services those fronts call, whose endpoints must serve the renewed certificate.'),
  ca: s
    .object({
      namespace: s.string({ maxLength: 63 }),
      name: dnsName('The Secret that holds the CA.'),
      certKey: s.string({ maxLength: 253 }),
      keyKey: s.string({ maxLength: 253 }),
    })
    .describe('Where the signing CA and its key are, read again at the Renew step (never copied into the status); for Regenerate, where the owner keeps its CA.'),
  action: s.enum(SECRET_RUN_ACTIONS).describe('RenewInPlace (absent means this too) or Regenerate (the owner makes the new pair).').optional(),
  removes: s
    .array(s.string({ maxLength: 320 }), { maxItems: 16 })
    .describe('Regenerate: the fronts (Kind/name) its owner registers again when it starts, deleted at Remove as its procedure says and put back from the backup by a rollback.')
    .optional(),
  phase: s.enum(SECRET_TARGET_PHASES),
  step: s.enum(SECRET_STEPS).describe('The next step to run (Renewing, RollingBack), or the step that failed (RolledBack, Failed).').optional(),
  stepSince: s.time('When the step began: Rollout, Verify and UndoRollout are bounded by spec.strategy.nodeTimeout from here.').optional(),
  failedStep: s.enum(SECRET_STEPS).describe('The step whose failure started the rollback.').optional(),
  oldSerial: optionalText(64, 'The serial of the certificate before the run.'),
  serial: optionalText(64, 'The serial of the renewed certificate.'),
  notAfter: s.time('When the renewed certificate expires.').optional(),
  clampedToCa: s.boolean("The old lifetime would have outlived the CA, so notAfter is the CA's.").optional(),
  caAddedTo: s
    .array(s.string({ maxLength: 320 }), { maxItems: 16 })
    .describe('Fronts whose caBundle lacked the CA and had it added at the Trust step (a rollback takes it out again).')
    .optional(),
  templateBefore: s
    .object({
      rolled: s.boolean('The Roll step patched the pod template.'),
      restartedAt: optionalText(64, 'The restartedAt annotation before the run; absent: there was none.'),
      rotation: optionalText(256, 'The rotation annotation before the run; absent: there was none.'),
      servingSerial: optionalText(64, 'The serving-serial annotation before the run; absent: there was none.'),
    })
    .describe("The pod template's annotations before the Roll step, which Undo puts back.")
    .optional(),
  message: optionalText(2048, 'What happened at the last step, or why it failed.'),
});
export type SecretRunTarget = Out<typeof secretRunTargetSchema>;

export const secretRunSchema = s
  .object({
    targets: s
      .array(secretRunTargetSchema, { maxItems: MAX_RUN_SECRET_TARGETS })
      .with({ 'x-kubernetes-list-type': 'atomic' })
      .describe('The targets this run renews or has regenerated, in the order it takes them (the earliest to expire first), one at a time.'),
  })
  .describe('scope: Secrets, mode: Apply: where each target of the run is.');
export type SecretRunStatus = Out<typeof secretRunSchema>;
