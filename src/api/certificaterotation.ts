// CertificateRotation: what a person or a GitOps pipeline asks for (spec) and
// what the controller reports (status). design.md §1.1 is the contract.
//
// The schema below is the single source of truth: the TypeScript types are
// inferred from it and crds/certificaterotations.certrotator.io.yaml is
// generated from it (npm run gen:crds).

import type { V1ObjectMeta } from '@kubernetes/client-node';
import {
  DISTRIBUTIONS,
  SERVICES_BY_DISTRIBUTION,
  type Distribution,
} from '../distributions/services.js';
import {
  API_VERSION,
  CERTIFICATE_ROTATION,
  FAILURE_POLICIES,
  MAX_PLANNED_NODES,
  MAX_STATUS_NODES,
  NEXT_NODES,
  MAX_UNAVAILABLE,
  MODES,
  NODE_PHASES,
  NODE_STEPS,
  ROTATION_PHASES,
  SCOPES,
  type Scope,
} from './constants.js';
import { conditionsSchema, durationSchema, labelSelectorSchema, roleSchema } from './common.js';
import { s, type CelRule, type In, type Out } from './schema.js';
import { secretPlanSchema, secretRunSchema, secretTargetsSchema } from './secret-targets.js';

/** A CertificateRotation's scopes: the node scopes, and Secrets (Secret-backed serving certificates, secret-targets.ts). */
export const ROTATION_SCOPES = [...SCOPES, 'Secrets'] as const;
export type RotationScope = (typeof ROTATION_SCOPES)[number];

/**
 * The node scope of a rotation that runs on nodes. A `scope: Secrets`
 * rotation never reaches the node code (reconcile-rotation.ts hands it to
 * src/controller/secrets first), so meeting one there is a bug, said loudly.
 */
export function nodeScope(scope: RotationScope): Scope {
  if (scope === 'Secrets') throw new Error('a rotation with scope Secrets has no node run (src/controller/secrets handles it)');
  return scope;
}

/**
 * `scope: Secrets` covers the Secret-backed serving certificates that
 * spec.secrets selects; the node fields mean nothing there, so they are
 * refused rather than ignored.
 */
export const SECRETS_SCOPE_RULES: CelRule[] = [
  {
    rule: "!has(self.scope) || self.scope != 'Secrets' || has(self.secrets)",
    message: 'spec.secrets is required when spec.scope is Secrets: name the webhookConfigurations, apiServices, conversionWebhooks, secretRefs or builtIn targets to cover, or write secrets: {} for every discovered one',
    fieldPath: '.secrets',
    reason: 'FieldValueRequired',
  },
  {
    rule: "(has(self.scope) && self.scope == 'Secrets') || !has(self.secrets)",
    message: 'spec.secrets is only allowed with spec.scope: Secrets',
    fieldPath: '.secrets',
    reason: 'FieldValueForbidden',
  },
  {
    rule: "!has(self.scope) || self.scope != 'Secrets' || !has(self.distribution)",
    message: 'spec.distribution does not apply to spec.scope: Secrets (Secret-backed certificates are the same on every distribution); remove it',
    fieldPath: '.distribution',
    reason: 'FieldValueForbidden',
  },
  {
    rule: "!has(self.scope) || self.scope != 'Secrets' || !has(self.strategy) || !has(self.strategy.nodeSelector)",
    message: 'spec.strategy.nodeSelector does not apply to spec.scope: Secrets; narrow the Secrets with spec.secrets.namespaces or spec.secrets.selector',
    fieldPath: '.strategy.nodeSelector',
    reason: 'FieldValueForbidden',
  },
];

const DISPLAY_NAME: Record<Distribution, string> = { rke2: 'RKE2', rke: 'RKE' };

function celList(values: readonly string[]): string {
  return `[${values.map((v) => `'${v}'`).join(', ')}]`;
}

/** Every service name some supported distribution accepts, sorted, without duplicates. */
export function allServiceNames(): string[] {
  return [...new Set(DISTRIBUTIONS.flatMap((d) => SERVICES_BY_DISTRIBUTION[d]))].sort();
}

/**
 * CEL rules that a service name belongs to the named distribution, generated
 * from src/distributions/services.ts so the API server and the controller can
 * never disagree about a name. Without spec.distribution the name must exist
 * in at least one distribution; the controller re-checks it against the
 * detected one (Stalled, reason ServiceNotInDistribution).
 */
export function serviceRules(field = 'spec'): CelRule[] {
  const perDistribution = DISTRIBUTIONS.map((d): CelRule => {
    const names = SERVICES_BY_DISTRIBUTION[d];
    return {
      rule: `!has(self.service) || !has(self.distribution) || self.distribution != '${d}' || self.service in ${celList(names)}`,
      message: `${field}.service must be one of the ${DISPLAY_NAME[d]} services: ${names.join(', ')}`,
      messageExpression: `'${field}.service "' + self.service + '" is not an ${DISPLAY_NAME[d]} service; ${DISPLAY_NAME[d]} services are: ${names.join(', ')}'`,
      fieldPath: '.service',
      reason: 'FieldValueInvalid',
    };
  });
  const any = allServiceNames();
  const anyDistribution: CelRule = {
    rule: `has(self.distribution) || !has(self.service) || self.service in ${celList(any)}`,
    message: `${field}.service must be a service of a supported distribution: ${DISTRIBUTIONS.map((d) => `${DISPLAY_NAME[d]}: ${SERVICES_BY_DISTRIBUTION[d].join(', ')}`).join('; ')}`,
    messageExpression: `'${field}.service "' + self.service + '" is not a service of any supported distribution (${DISTRIBUTIONS.map((d) => `${DISPLAY_NAME[d]}: ${SERVICES_BY_DISTRIBUTION[d].join(', ')}`).join('; ')})'`,
    fieldPath: '.service',
    reason: 'FieldValueInvalid',
  };
  return [...perDistribution, anyDistribution];
}

/** `field`: where the spec sits (spec, or a policy's spec.template), so each message names the field a person wrote. */
export function scopeRules(field = 'spec'): CelRule[] {
  return [
  {
    rule: "!has(self.scope) || self.scope != 'Service' || has(self.service)",
    message: `${field}.service is required when ${field}.scope is Service: name the one service to rotate`,
    fieldPath: '.service',
    reason: 'FieldValueRequired',
  },
  {
    rule: "(has(self.scope) && self.scope == 'Service') || !has(self.service)",
    message:
      `${field}.service is only allowed with ${field}.scope: Service; scope All (the default) rotates every service, so remove ${field}.service or set ${field}.scope: Service`,
    fieldPath: '.service',
    reason: 'FieldValueForbidden',
  },
  ];
}

export const SCOPE_RULES: CelRule[] = scopeRules();

export const strategySchema = s.object({
  maxUnavailable: s
    .int32({
      minimum: 1,
      maximum: MAX_UNAVAILABLE,
      description: `Worker nodes restarted at once (1 to ${MAX_UNAVAILABLE}). Server and etcd nodes always go one at a time.`,
    })
    .validate(
      {
        rule: 'self >= 1',
        message: 'spec.strategy.maxUnavailable must be at least 1 (worker nodes restarted at once)',
      },
      {
        rule: `self <= ${MAX_UNAVAILABLE}`,
        message: `spec.strategy.maxUnavailable must be at most ${MAX_UNAVAILABLE}: the nodes in flight are listed in status.nodes, which has a bounded size`,
      },
    )
    .default(1),
  nodeSelector: labelSelectorSchema
    .describe('Narrows the nodes the rotation touches. Empty or absent: every node of the cluster.')
    .optional(),
  nodeTimeout: durationSchema(
    'spec.strategy.nodeTimeout',
    'A node step that takes longer than this has failed. Go duration syntax, e.g. 10m.',
  ).default('10m'),
  onFailure: s
    .enum(FAILURE_POLICIES, {
      description:
        "Rollback: restore the failed node's backup, restart, stop the run. Halt: stop the run and touch nothing.",
    })
    .default('Rollback'),
});

export const certificateRotationSpecSchema = s
  .object({
    distribution: s
      .enum(DISTRIBUTIONS, { description: 'The cluster distribution. Absent: detected from the nodes.' })
      .optional(),
    scope: s
      .enum(ROTATION_SCOPES, {
        description:
          'All: every service certificate, same CA. Service: only spec.service. Secrets: the Secret-backed serving certificates of webhooks, aggregated APIs and conversion webhooks that spec.secrets selects.',
      })
      .default('All'),
    service: s
      .string({
        maxLength: 63,
        description: "The one service to rotate when scope is Service; one of the distribution's service names.",
      })
      .optional(),
    mode: s
      .enum(MODES, { description: 'Apply: rotate. Plan: publish the ordered plan and current expiry, change nothing.' })
      .default('Apply'),
    paused: s.boolean('Stop starting new nodes; nodes in flight finish.').default(false),
    strategy: strategySchema.default({}),
    secrets: secretTargetsSchema.optional(),
  })
  .validate(...SCOPE_RULES, ...serviceRules(), ...SECRETS_SCOPE_RULES);

export const nodeStatusSchema = s.object({
  name: s.string({ maxLength: 253 }),
  role: roleSchema,
  phase: s.enum(NODE_PHASES),
  startedAt: s.time().optional(),
  finishedAt: s.time().optional(),
  message: s.string({ maxLength: 1024 }).optional(),
  step: s.enum(NODE_STEPS, { description: "The agent's step when the node stopped (from its NodeRotation)." }).optional(),
  reason: s
    .string({ maxLength: 64, description: 'Why the node stopped when not Rotated, e.g. NodeTimeout (the controller gave up waiting).' })
    .optional(),
});

/** How many nodes of a run are in each phase, for one role string. */
export const roleCountsSchema = s.object({
  role: s.string({ maxLength: 64, description: 'The role string, e.g. etcd,controlplane or worker.' }),
  planned: s.int32({ minimum: 0 }),
  pending: s.int32({ minimum: 0 }),
  updating: s.int32({ minimum: 0 }),
  rotated: s.int32({ minimum: 0 }),
  failed: s.int32({ minimum: 0, description: 'Failed or RolledBack.' }),
  skipped: s.int32({ minimum: 0 }),
});

/**
 * What the run rotates, frozen when it starts. The run's nodes are re-derived
 * from it on every pass: the Nodes it selects that existed when the run
 * started (a node that joins later waits for the next run), plus every node
 * the run already touched.
 */
export const runSpecSchema = s
  .object({
    scope: s.enum(SCOPES),
    service: s.string({ maxLength: 63 }).optional(),
    nodeSelector: labelSelectorSchema.optional(),
  })
  .describe('What the running run rotates, as the spec said when it started.');

export const plannedNodeSchema = s.object({
  name: s.string({ maxLength: 253 }),
  role: roleSchema,
  batch: s.int32({ minimum: 0, description: 'Nodes with the same batch may be in flight together.' }),
  services: s.array(s.string({ maxLength: 63 }), { maxItems: 32 }),
  files: s
    .array(s.string({ maxLength: 4096 }), { maxItems: 256 })
    .describe('Certificate files this node would renew, when known.')
    .optional(),
});

export const serviceExpirySchema = s.object({
  service: s.string({ maxLength: 63 }),
  notAfter: s.time('The earliest notAfter of this service across the planned nodes.'),
  node: s.string({ maxLength: 253 }).optional(),
  path: s.string({ maxLength: 4096 }).optional(),
});

export const certificateRotationStatusSchema = s
  .object({
    observedGeneration: s
      .int64({
        description:
          'The spec generation this status describes. -1 until the controller first sees the object, so a new object never looks done.',
      })
      .default(-1),
    distribution: s.enum(DISTRIBUTIONS, { description: 'The distribution in use: spec.distribution or detected.' }).optional(),
    phase: s.enum(ROTATION_PHASES).optional(),
    progress: s.string({ maxLength: 32, description: 'Finished nodes / planned nodes, e.g. 4/6.' }).optional(),
    current: s.string({ maxLength: 256, description: 'The node(s) in flight, for the printer column.' }).optional(),
    runGeneration: s
      .int64({ description: 'The spec generation of the run that status.nodes and status.counts describe (NodeRotation names carry it).' })
      .optional(),
    runFingerprint: s
      .string({
        maxLength: 64,
        description:
          'Hash of what the run rotates (distribution, scope, service, nodeSelector, mode). A spec change mid-run that keeps it (paused, maxUnavailable, nodeTimeout, onFailure) steers the running run; one that changes it starts a new run after this one ends.',
      })
      .optional(),
    startedAt: s.time().optional(),
    completedAt: s.time().optional(),
    conditions: conditionsSchema.optional(),
    // Atomic, not a list keyed by name: only the controller writes it, always
    // whole (a fenced PUT of status), so per-entry field ownership buys
    // nothing and cost the most of all (managedFields listed every field of
    // every entry). Bounded: it lists only the nodes in flight and the ones
    // that stopped; a Rotated node's detail is on its NodeRotation and a
    // Pending one is in status.counts, so the status is as large at 5,000
    // nodes as at 50 (issue 14: it was 0.7 MiB, rewritten on every hand-off).
    nodes: s
      .array(nodeStatusSchema, { maxItems: MAX_STATUS_NODES })
      .with({ 'x-kubernetes-list-type': 'atomic' })
      .describe(
        'The nodes of the run in flight (Updating) or stopped (Failed, RolledBack; Skipped while in flight, the latest few), in plan order. Rotated nodes are counted in status.counts; their NodeRotations have the detail.',
      )
      .optional(),
    counts: s
      .listMap(roleCountsSchema, 'role', { maxItems: 16 })
      .describe('How many nodes of the run are in each phase, per role (e.g. etcd,controlplane).')
      .optional(),
    planDescription: s
      .string({ maxLength: 1024, description: 'The order of the run in words: the servers one at a time, then the workers by name, maxUnavailable at a time.' })
      .optional(),
    nextNodes: s
      .array(s.string({ maxLength: 253 }), { maxItems: NEXT_NODES })
      .with({ 'x-kubernetes-list-type': 'atomic' })
      .describe(
        'The nodes the run starts next, in order (the first few). Recorded before any of them starts: a node listed here may be started as soon as a slot frees, before the status write that moves it to status.nodes.',
      )
      .optional(),
    runSpec: runSpecSchema.optional(),
    plan: s
      .object({
        nodes: s.listMap(plannedNodeSchema, 'name', { maxItems: MAX_PLANNED_NODES }),
        earliestExpiry: s.listMap(serviceExpirySchema, 'service', { maxItems: 64 }).optional(),
      })
      .describe('Plan mode: the ordered plan and the earliest notAfter per service.')
      .optional(),
    secretPlan: secretPlanSchema.optional(),
    secretRun: secretRunSchema.optional(),
  })
  // Applied on every read from storage, so even before the controller writes
  // anything `status.observedGeneration` is -1 (the Flux practice).
  .default({ observedGeneration: -1 });

export type CertificateRotationSpec = Out<typeof certificateRotationSpecSchema>;
export type CertificateRotationSpecInput = In<typeof certificateRotationSpecSchema>;
export type RotationStrategy = Out<typeof strategySchema>;
export type CertificateRotationStatus = Out<typeof certificateRotationStatusSchema>;
export type NodeStatus = Out<typeof nodeStatusSchema>;
export type PlannedNodeStatus = Out<typeof plannedNodeSchema>;
export type ServiceExpiry = Out<typeof serviceExpirySchema>;
export type RoleCounts = Out<typeof roleCountsSchema>;
export type RunSpec = Out<typeof runSpecSchema>;

/** A CertificateRotation as read from the API server (defaults applied). */
export interface CertificateRotation {
  apiVersion: typeof API_VERSION;
  kind: typeof CERTIFICATE_ROTATION.kind;
  metadata: V1ObjectMeta;
  spec: CertificateRotationSpec;
  status?: CertificateRotationStatus;
}

/** A CertificateRotation as a user writes it. */
export interface CertificateRotationInput {
  apiVersion: typeof API_VERSION;
  kind: typeof CERTIFICATE_ROTATION.kind;
  metadata: V1ObjectMeta;
  spec: CertificateRotationSpecInput;
}
