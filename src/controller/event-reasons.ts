// Reasons of the Events the controller records on a CertificateRotation, one
// per transition a person would want in `kubectl describe` (UpperCamelCase,
// as Event reasons are).
export const EVENT_REASONS = {
  runStarted: 'RunStarted',
  nodeStarted: 'NodeStarted',
  nodeRotated: 'NodeRotated',
  nodeFailed: 'NodeFailed',
  nodeRolledBack: 'NodeRolledBack',
  nodeTimedOut: 'NodeTimedOut',
  nodeSkipped: 'NodeSkipped',
  runSucceeded: 'RunSucceeded',
  runFailed: 'RunFailed',
  runPaused: 'RunPaused',
  runResumed: 'RunResumed',
  queued: 'Queued',
  planned: 'Planned',
  invalid: 'InvalidRotation',
  deleting: 'WaitingForNodeInFlight',
  // scope Secrets: one Secret-backed certificate renewed, rolled and verified; or one rolled back.
  secretRenewed: 'SecretRenewed',
  secretRolledBack: 'SecretRolledBack',
  // RKE scope All: kube-admin renewed in full-cluster-state; the admin's local
  // kube_config_cluster.yml and cluster.rkestate are stale.
  rkeKubeAdminRenewed: 'KubeAdminRenewed',
  // RKE, any other scope: full-cluster-state holds the new certificates; the
  // admin's local cluster.rkestate (what `rke up` reads) is stale.
  rkeStateUpdated: 'ClusterStateUpdated',
  // A failed RKE run: some nodes hold certificates full-cluster-state does not.
  rkeStateNotUpdated: 'ClusterStateNotUpdated',
} as const;
