// Names that appear on the wire: group, version, kinds, labels, condition types
// and reasons. Everything that reads or writes our objects imports them from
// here, so a typo is a compile error instead of a silent mismatch.

import type { NodeRole } from '../distributions/services.js';

export const GROUP = 'certrotator.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
export const CATEGORY = 'certrotator';

export const CERTIFICATE_ROTATION = {
  kind: 'CertificateRotation',
  listKind: 'CertificateRotationList',
  plural: 'certificaterotations',
  singular: 'certificaterotation',
  shortNames: ['certrotation', 'certrotations', 'crot'],
} as const;

export const NODE_ROTATION = {
  kind: 'NodeRotation',
  listKind: 'NodeRotationList',
  plural: 'noderotations',
  singular: 'noderotation',
  shortNames: ['noderot', 'nrot'],
} as const;

export const CERTIFICATE_INVENTORY = {
  kind: 'CertificateInventory',
  listKind: 'CertificateInventoryList',
  plural: 'certificateinventories',
  singular: 'certificateinventory',
  shortNames: ['certinv', 'certinventory'],
} as const;

export const CERTIFICATE_ROTATION_POLICY = {
  kind: 'CertificateRotationPolicy',
  listKind: 'CertificateRotationPolicyList',
  plural: 'certificaterotationpolicies',
  singular: 'certificaterotationpolicy',
  shortNames: ['crpol', 'certrotationpolicy'],
} as const;

/** Labels the controller puts on every NodeRotation so agents and people can select them. */
export const LABELS = {
  /** Name of the owning CertificateRotation. */
  rotation: `${GROUP}/rotation`,
  /** Node the NodeRotation is addressed to; an agent watches only its own. */
  node: `${GROUP}/node`,
  /** CertificateRotation generation (= run) the NodeRotation belongs to. */
  generation: `${GROUP}/generation`,
  /** On a CertificateRotation a policy created: the policy's name. */
  policy: `${GROUP}/policy`,
} as const;

/**
 * On a CertificateRotation the policy paused because its window closed: the
 * policy resumes only what it paused, never a rotation a person paused.
 */
export const PAUSED_BY_POLICY_ANNOTATION = `${GROUP}/paused-by-policy`;

/** Finalizer that holds a CertificateRotation until its node in flight finishes. */
export const FINALIZER = `${GROUP}/node-in-flight`;

export const SCOPES = ['All', 'Service'] as const;
export type Scope = (typeof SCOPES)[number];

export const MODES = ['Apply', 'Plan'] as const;
export type Mode = (typeof MODES)[number];

export const FAILURE_POLICIES = ['Rollback', 'Halt'] as const;
export type FailurePolicy = (typeof FAILURE_POLICIES)[number];

export const ROTATION_PHASES = ['Pending', 'Planned', 'Progressing', 'Paused', 'Succeeded', 'Failed'] as const;
export type RotationPhase = (typeof ROTATION_PHASES)[number];

export const NODE_PHASES = ['Pending', 'Updating', 'Rotated', 'Failed', 'RolledBack', 'Skipped', 'Checked'] as const;
export type NodePhase = (typeof NODE_PHASES)[number];
/** Phases after which a node is never touched again in the same run. */
export const FINISHED_NODE_PHASES: readonly NodePhase[] = ['Rotated', 'Failed', 'RolledBack', 'Skipped', 'Checked'];

/**
 * What a NodeRotation asks of its agent. Rotate: renew, restart, verify.
 * Check: read the certificates and report their serial and notAfter, change
 * nothing (how `mode: Plan` learns the current expiry: only an agent can read
 * the host's files).
 */
export const NODE_ACTIONS = ['Rotate', 'Check'] as const;
export type NodeAction = (typeof NODE_ACTIONS)[number];

/** Where an agent is within one node's rotation; resumable from the host journal. */
export const NODE_STEPS = ['BackingUp', 'Renewing', 'Restarting', 'Verifying', 'RollingBack', 'Done'] as const;
export type NodeStep = (typeof NODE_STEPS)[number];

/** Role order inside a role string: `etcd,controlplane`, never `controlplane,etcd`. */
export const ROLE_ORDER: readonly NodeRole[] = ['etcd', 'controlplane', 'worker'];

/** Every non-empty role combination, written in ROLE_ORDER and joined by commas. */
export const ROLE_STRINGS: readonly string[] = [1, 2, 3].flatMap((size) =>
  combinations(ROLE_ORDER, size).map((roles) => roles.join(',')),
);

function combinations<T>(items: readonly T[], size: number): T[][] {
  if (size === 0) return [[]];
  return items.flatMap((item, i) => combinations(items.slice(i + 1), size - 1).map((rest) => [item, ...rest]));
}

export const CONDITION_TYPES = {
  /** kstatus: True when the run finished (or the plan is published). */
  ready: 'Ready',
  /** kstatus "abnormal-true": True while the controller is still working. */
  reconciling: 'Reconciling',
  /** kstatus "abnormal-true": True when the run cannot finish without a person. */
  stalled: 'Stalled',
  /** Cascade: every etcd and control-plane node in the plan is rotated. */
  serversRotated: 'ServersRotated',
  /** Cascade: every worker node in the plan is restarted with fresh certificates. */
  workersRestarted: 'WorkersRestarted',
} as const;
export type ConditionType = (typeof CONDITION_TYPES)[keyof typeof CONDITION_TYPES];

/** Condition reasons (CamelCase, as metav1.Condition requires). */
/** The most nodes one Plan-mode rotation plans: status.plan.nodes has this maxItems. An Apply run has no such limit (its status does not list every node). */
export const MAX_PLANNED_NODES = 5000;

/**
 * The most workers in flight at once (spec.strategy.maxUnavailable). It bounds
 * status.nodes, which lists only the nodes in flight or stopped: the rest of
 * the run is counts and its NodeRotations, so the status stays the same size
 * at 50 nodes and at 5,000.
 */
export const MAX_UNAVAILABLE = 500;
/** Nodes skipped while in flight (their Node was deleted) kept in status.nodes; older ones are only counted. */
export const MAX_SKIPPED_LISTED = 20;
/** status.nodes maxItems: every node in flight (one server, or MAX_UNAVAILABLE workers), the ones that stopped with them, and the skipped ones listed. */
export const MAX_STATUS_NODES = 2 * MAX_UNAVAILABLE + MAX_SKIPPED_LISTED;
/**
 * status.nextNodes: how many of the nodes a run starts next are recorded ahead
 * of time. A node so recorded can be started the moment a slot frees, with its
 * status write after the create instead of before it (cascade.ts). A constant,
 * not maxUnavailable: a node once recorded must stay recorded until it starts,
 * whatever the strategy is changed to meanwhile.
 */
export const NEXT_NODES = 16;

export const REASONS = {
  // Reconciling=True
  planning: 'Planning',
  progressing: 'Progressing',
  queued: 'Queued',
  paused: 'Paused',
  finishingInFlight: 'FinishingInFlight',
  // Ready=True
  succeeded: 'Succeeded',
  planned: 'Planned',
  // Stalled=True (never a silent hang: each names what a person must fix)
  nodeFailed: 'NodeFailed',
  nodeRolledBack: 'NodeRolledBack',
  nodeTimeout: 'NodeTimeout',
  // A planned node whose Node object is gone: skipped, the run goes on.
  nodeDeleted: 'NodeDeleted',
  serviceNotInDistribution: 'ServiceNotInDistribution',
  distributionUnknown: 'DistributionUnknown',
  noNodesSelected: 'NoNodesSelected',
  // More nodes than one Plan-mode rotation's status can hold (MAX_PLANNED_NODES).
  planTooLarge: 'PlanTooLarge',
  // scope Secrets: the controller may not read what discovery needs (RBAC).
  discoveryForbidden: 'DiscoveryForbidden',
  // scope Secrets, Apply: a target in scope cannot be renewed in place (or too many are); nothing changed.
  secretTargetsNotRenewable: 'SecretTargetsNotRenewable',
  // scope Secrets, Apply: a target's step failed; it was rolled back, or the rollback failed too.
  secretTargetRolledBack: 'SecretTargetRolledBack',
  secretTargetFailed: 'SecretTargetFailed',
  // Cascade conditions
  pending: 'Pending',
  inProgress: 'InProgress',
  rotated: 'Rotated',
  restarted: 'Restarted',
  noneInPlan: 'NoneInPlan',
  failed: 'Failed',
  // CertificateRotationPolicy
  notDue: 'NotDue',
  waitingForWindow: 'WaitingForWindow',
  waitingForInventory: 'WaitingForInventory',
  rotationRunning: 'RotationRunning',
  rotationCreated: 'RotationCreated',
  suspended: 'Suspended',
  expiredOutsideWindow: 'ExpiredOutsideWindow',
  lastRotationFailed: 'LastRotationFailed',
  stillDueAfterRotation: 'StillDueAfterRotation',
  invalidTimeZone: 'InvalidTimeZone',
  // Generic "the opposite is true" reason for False conditions.
  notReady: 'NotReady',
  asExpected: 'AsExpected',
} as const;
export type Reason = (typeof REASONS)[keyof typeof REASONS];
