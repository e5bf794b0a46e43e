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
  runSucceeded: 'RunSucceeded',
  runFailed: 'RunFailed',
  runPaused: 'RunPaused',
  runResumed: 'RunResumed',
  queued: 'Queued',
  planned: 'Planned',
  invalid: 'InvalidRotation',
  deleting: 'WaitingForNodeInFlight',
} as const;
