// The host-steps API, for the offline CLI today and the node agent later:
//   const host = openHost(catalog, '/host', dataDir);
//   const roles = await detectRoles(catalog, host, { dataDir });     // or from Node labels
//   const files = await planNode(catalog, host, scope, roles, { dataDir });
//   const result = await runNodeRotation({ catalog, host, scope, roles, dataDir, nodeIP,
//     restart: true, executor: new HostCommandExecutor('/host'), onProgress });
// runNodeRotation resumes an unfinished journal of the same scope by itself; on failure
// it throws NodeRotationError { step, rolledBack, backupDir } after rolling back.
export { detectRoles, planNode, scopeServices, PlanError, type PlannedFile, type Scope } from './plan.js';
export {
  findUnfinishedJournal,
  NodeRotationError,
  openHost,
  runNodeRotation,
  type FileResult,
  type NodeRotationOptions,
  type NodeRotationResult,
  type ProgressEvent,
  type RotationStep,
} from './rotation.js';
export { HostCommandExecutor, RestartError, type RestartExecutor } from './restart.js';
export { inspectNode, type CertificateReport } from './inspect.js';
export { HostRoot, HostPathError } from './root.js';
