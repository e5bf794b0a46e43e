// Translating what the host steps did into the NodeRotation status the
// controller and people read. Pure, so the mapping is tested without a host.
import type { FileReport, NodeRotationSpec, NodeRotationStatus } from '../api/noderotation.js';
import type { NodePhase, NodeStep } from '../api/constants.js';
import type { FileResult, RotationStep } from '../host/rotation.js';
import type { Scope } from '../host/plan.js';
import type { CertificateReport } from '../host/inspect.js';

/** The status field `step` is coarser than the host's steps: planning and staging count as backing up. */
export function statusStep(step: RotationStep): NodeStep {
  switch (step) {
    case 'plan':
    case 'prepare':
    case 'backup':
      return 'BackingUp';
    case 'install':
      return 'Renewing';
    case 'restart':
      return 'Restarting';
    case 'verify':
      return 'Verifying';
    case 'rollback':
      return 'RollingBack';
    case 'done':
      return 'Done';
  }
}

/** Host paths are relative to the host root; people and the status speak in absolute host paths. */
export function hostPath(relative: string): string {
  return relative.startsWith('/') ? relative : `/${relative}`;
}

export function fileReports(files: readonly FileResult[]): FileReport[] {
  return files.map((f) => ({
    service: f.service,
    path: hostPath(f.path),
    ...(f.oldSerial ? { oldSerial: f.oldSerial } : {}),
    ...(f.newSerial ? { newSerial: f.newSerial } : {}),
    ...(f.notAfter ? { newNotAfter: f.notAfter } : {}),
    servedVerified: f.servedVerified,
    ...(f.backupPath ? { backupPath: hostPath(f.backupPath) } : {}),
  }));
}

/** A Check's findings as status.files: the serial and notAfter found, or why a file could not be read. */
export function checkReports(reports: readonly CertificateReport[]): FileReport[] {
  return reports.map((r) => ({
    service: r.service,
    path: hostPath(r.path),
    ...(r.serial ? { oldSerial: r.serial } : {}),
    ...(r.notAfter ? { notAfter: r.notAfter } : {}),
    ...(r.error ? { error: r.error.slice(0, 1024) } : {}),
  }));
}

/** One line for a Check's status.message: how many certificates, and the one that expires first. */
export function checkMessage(node: string, files: readonly FileReport[]): string {
  const read = files.filter((f) => f.notAfter);
  const unreadable = files.length - read.length;
  const first = [...read].sort((a, b) => Date.parse(a.notAfter!) - Date.parse(b.notAfter!))[0];
  const parts = [`node ${node}: ${read.length} certificate(s) read, nothing changed`];
  if (first) parts.push(`earliest notAfter ${first.notAfter} (${first.service}, ${first.path})`);
  if (unreadable > 0) parts.push(`${unreadable} file(s) could not be read`);
  return parts.join('; ');
}

export function hostScope(spec: Pick<NodeRotationSpec, 'scope' | 'services'>): Scope {
  return spec.scope === 'All' ? { all: true } : { services: [...spec.services] };
}

/** A run is finished for good once its report carries a final phase for the same runID. */
export function isReported(spec: Pick<NodeRotationSpec, 'runID'>, status: NodeRotationStatus | undefined, finished: readonly NodePhase[]): boolean {
  return status?.runID === spec.runID && finished.includes(status.phase);
}

/** One line for status.message, naming the node and the step, without anything secret in it. */
export function failureMessage(node: string, step: NodeStep, message: string, rolledBack: boolean, backupDir?: string): string {
  const what = rolledBack ? `rolled back from ${backupDir ? hostPath(backupDir) : 'the backup'}` : 'not rolled back';
  // Host errors can be long (a rollback that also failed names every file); the
  // status field is capped at 4096 characters by the CRD.
  return `node ${node}: step ${step} failed: ${message}; ${what}`.slice(0, 4000);
}
