// NodeRotation: the controller's instruction to one node for one run (spec)
// and that node's agent's report (status). design.md §1.2.
//
// The spec carries everything the agent needs and nothing it must look up
// elsewhere, so an agent that restarts mid-step can resume from its host
// journal keyed by spec.runID. The spec is immutable: an agent may already be
// acting on it, so changing it underneath would make the journal lie. A new
// run is a new NodeRotation (its name carries the generation).
//
// The status never carries key material: serials, dates and paths only; the
// one public key in it is the agent's, to seal the node's RKE certificates to.

import type { V1ObjectMeta } from '@kubernetes/client-node';
import { DISTRIBUTIONS, SERVICES_BY_DISTRIBUTION } from '../distributions/services.js';
import {
  API_VERSION,
  FAILURE_POLICIES,
  NODE_ACTIONS,
  NODE_PHASES,
  NODE_ROTATION,
  NODE_STEPS,
  SCOPES,
} from './constants.js';
import { conditionsSchema, durationSchema, roleSchema } from './common.js';
import { s, type CelRule, type In, type Out } from './schema.js';

function servicesBelongRules(): CelRule[] {
  return DISTRIBUTIONS.map((d) => ({
    rule: `self.distribution != '${d}' || self.services.all(x, x in [${SERVICES_BY_DISTRIBUTION[d].map((n) => `'${n}'`).join(', ')}])`,
    message: `spec.services must all be ${d} services: ${SERVICES_BY_DISTRIBUTION[d].join(', ')}`,
    fieldPath: '.services',
  }));
}

export const NODE_SPEC_IMMUTABLE_MESSAGE =
  'NodeRotation spec is immutable: an agent may already be acting on it; delete it and create a new one for a new run';

export const nodeRotationSpecSchema = s
  .object({
    rotation: s.string({ maxLength: 253, description: 'Name of the CertificateRotation this instruction belongs to.' }),
    generation: s.int64({
      minimum: 1,
      description: 'The CertificateRotation generation (= run) this instruction belongs to.',
    }),
    runID: s.string({
      minLength: 1,
      maxLength: 128,
      description:
        "Identifies this run on this node; the agent's host journal is keyed by it, so repeating a step of the same run is a no-op.",
    }),
    nodeName: s.string({ maxLength: 253, description: 'The node whose agent acts on this instruction.' }),
    role: roleSchema.describe("The node's roles as the planner classified them, e.g. etcd,controlplane."),
    action: s
      .enum(NODE_ACTIONS, {
        description:
          'Rotate: renew the certificates, restart, verify. Check (mode: Plan): read the certificates and report their serial and notAfter; change nothing.',
      })
      .default('Rotate'),
    distribution: s.enum(DISTRIBUTIONS),
    scope: s.enum(SCOPES, { description: 'All: every certificate of the node. Service: only spec.services.' }),
    services: s
      .array(s.string({ maxLength: 63 }), { maxItems: 32 })
      .with({ 'x-kubernetes-list-type': 'set' })
      .describe('The services whose certificates to renew on this node, resolved by the controller.'),
    restart: s.boolean('Restart the components that use the renewed certificates, and verify them.').default(true),
    timeout: durationSchema(
      'spec.timeout',
      "The CertificateRotation's strategy.nodeTimeout. The agent's verification (the restarted components back and serving the new certificates) ends by 70% of it (at least 5s) from when the agent picked the node up, then fails the node and applies onFailure, so that a rollback still reports within it; each restart command has its own 5-minute bound.",
    ).default(
      '10m',
    ),
    onFailure: s.enum(FAILURE_POLICIES).default('Rollback'),
    bundleSecretRef: s
      .object({ namespace: s.string({ maxLength: 63 }), name: s.string({ maxLength: 253 }) })
      .describe(
        "RKE only: the controller issued this run's certificates once (shared ones such as kube-node) and keeps them, sealed, in this Secret, which only the controller reads. The agent publishes status.sealingKey and installs what the controller seals to it in sealedBundle.",
      )
      .optional(),
  })
  .validate(
    { rule: 'self == oldSelf', message: NODE_SPEC_IMMUTABLE_MESSAGE },
    {
      rule: "self.scope != 'Service' || size(self.services) > 0",
      message: 'spec.services must name at least one service when spec.scope is Service',
      fieldPath: '.services',
      reason: 'FieldValueRequired',
    },
    ...servicesBelongRules(),
  );

export const fileReportSchema = s.object({
  service: s.string({ maxLength: 63 }),
  path: s.string({ maxLength: 4096, description: 'Absolute path on the host.' }),
  oldSerial: s.string({ maxLength: 128, description: 'Hex serial before the rotation.' }).optional(),
  newSerial: s.string({ maxLength: 128, description: 'Hex serial of the renewed certificate.' }).optional(),
  newNotAfter: s.time('notAfter of the renewed certificate.').optional(),
  servedVerified: s
    .boolean('The serving endpoint was seen presenting the new serial (serving certificates only).')
    .optional(),
  backupPath: s.string({ maxLength: 4096, description: 'Where the previous file was backed up.' }).optional(),
  notAfter: s.time('Check: notAfter of the certificate as found on the host.').optional(),
  error: s.string({ maxLength: 1024, description: 'Check: why this file could not be read (missing, not readable, not a certificate).' }).optional(),
});

export const nodeRotationStatusSchema = s
  .object({
    phase: s.enum(NODE_PHASES).default('Pending'),
    step: s.enum(NODE_STEPS).optional(),
    runID: s.string({ maxLength: 128, description: 'The spec.runID this report is about.' }).optional(),
    agent: s.string({ maxLength: 253, description: 'The agent (pod) that wrote this report.' }).optional(),
    message: s.string({ maxLength: 4096 }).optional(),
    startedAt: s.time().optional(),
    finishedAt: s.time().optional(),
    backupPath: s.string({ maxLength: 4096, description: 'The backup directory for this run on the host.' }).optional(),
    sealingKey: s
      .string({
        maxLength: 64,
        description:
          "RKE runs with a controller-issued bundle: the agent's X25519 public key (base64url) for this run, made in the agent's memory and never written; the controller seals this node's certificates to it in sealedBundle.",
      })
      .optional(),
    files: s.listMap(fileReportSchema, 'path', { maxItems: 256 }).optional(),
    conditions: conditionsSchema.optional(),
  })
  .default({ phase: 'Pending' });

// Written by the controller (never by an agent) outside spec, which is
// immutable: the node's certificates of the run, sealed to the key the agent
// published in status.sealingKey. Only that agent process can open it; to
// anyone else who can read NodeRotations it is ciphertext.
export const sealedBundleSchema = s
  .object({
    recipientKey: s.string({ maxLength: 64, description: 'The status.sealingKey it is sealed to.' }),
    senderKey: s.string({ maxLength: 64, description: "The controller's one-off X25519 public key for this box." }),
    nonce: s.string({ maxLength: 32 }),
    ciphertext: s.string({ maxLength: 262144, description: 'AES-256-GCM of the pairs (base64).' }),
    entries: s.array(s.string({ maxLength: 253 }), { maxItems: 256 }).describe('The certificate names inside, for people; no key material.'),
  })
  .describe("RKE runs: this node's certificates of the run, sealed to its agent's status.sealingKey.");

export type NodeRotationSpec = Out<typeof nodeRotationSpecSchema>;
export type SealedBundle = Out<typeof sealedBundleSchema>;
export type NodeRotationSpecInput = In<typeof nodeRotationSpecSchema>;
export type NodeRotationStatus = Out<typeof nodeRotationStatusSchema>;
export type FileReport = Out<typeof fileReportSchema>;

export interface NodeRotation {
  apiVersion: typeof API_VERSION;
  kind: typeof NODE_ROTATION.kind;
  metadata: V1ObjectMeta;
  spec: NodeRotationSpec;
  sealedBundle?: SealedBundle;
  status?: NodeRotationStatus;
}
