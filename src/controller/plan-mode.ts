// `mode: Plan`: publish what an Apply run would do, change nothing.
//
// The order, batches and services per node are the same planRotation an
// Apply run freezes. The files per node and the earliest notAfter per service
// need the host's certificates, and only an agent can read those, so a plan
// asks every planned node's agent for a read-only Check (a NodeRotation with
// spec.action Check) and folds the answers into status.plan:
//   1. write status.plan (the nodes, no files yet), Reconciling=True/Planning;
//   2. only then create the Check NodeRotations (same intent-first order as a
//      run, so a crash in between re-creates the same objects by name);
//   3. every pass takes in the reports; when all nodes answered, or
//      spec.strategy.nodeTimeout passed since the plan started, Ready=True
//      with the earliest expiry and the nodes that did not answer.
// Checks hold no rotation slot (they restart nothing), so a plan never queues
// and never delays an Apply run.
import type { CertificateRotationStatus, PlannedNodeStatus, ServiceExpiry } from '../api/certificaterotation.js';
import type { FileReport, NodeRotation } from '../api/noderotation.js';
import type { Plan } from './plan.js';

export function planStatus(plan: Plan): NonNullable<CertificateRotationStatus['plan']> {
  return {
    nodes: plan.nodes.map((n) => ({ name: n.name, role: n.role, batch: n.batch, services: [...n.services] })),
  };
}

/**
 * The earliest notAfter per service among one node's reported files, read
 * from `field`: `notAfter` for a Check (as found), `newNotAfter` for a
 * rotation (as renewed). Feeds the certificate_not_after metric either way.
 */
export function earliestByService(files: readonly FileReport[], field: 'notAfter' | 'newNotAfter'): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of files) {
    const t = f[field];
    if (!t) continue;
    const best = out.get(f.service);
    if (!best || Date.parse(t) < Date.parse(best)) out.set(f.service, t);
  }
  return out;
}

/**
 * The file lists go into status.plan only while they fit this budget (JSON
 * characters): the object is one etcd value (1.5 MiB by default), and at a few
 * thousand nodes the lists alone would pass it. Every node's full list is in
 * its Check NodeRotation's status either way.
 */
export const PLAN_FILES_BUDGET = 128 * 1024;

export interface CheckOutcome {
  /** status.plan with files (within the budget) and the earliest notAfter per service. */
  plan: NonNullable<CertificateRotationStatus['plan']>;
  /** Planned nodes whose agent answered (Checked or Failed). */
  reported: number;
  /** Planned nodes without a Check NodeRotation yet (to create). */
  unsent: string[];
  /** Nodes whose check failed (the agent could not read the host). */
  failed: string[];
  /** Nodes that did not answer (meaningful once the deadline passed). */
  silent: string[];
  /** Nodes whose file list did not fit PLAN_FILES_BUDGET. */
  filesOmitted: number;
  /** The earliest notAfter per node and service, for the certificate_not_after metric. */
  perNode: { node: string; service: string; notAfter: string }[];
}

/** Folds the Check reports of one plan into status.plan. Pure. */
export function collectChecks(
  planned: readonly PlannedNodeStatus[],
  checks: readonly NodeRotation[],
  budget = PLAN_FILES_BUDGET,
): CheckOutcome {
  const byNode = new Map(checks.map((nr) => [nr.spec.nodeName, nr]));
  const earliest = new Map<string, ServiceExpiry>();
  const perNode: CheckOutcome['perNode'] = [];
  const out: CheckOutcome = { plan: { nodes: [] }, reported: 0, unsent: [], failed: [], silent: [], filesOmitted: 0, perNode };
  let used = 0;
  for (const p of planned) {
    const entry: PlannedNodeStatus = { name: p.name, role: p.role, batch: p.batch, services: [...p.services] };
    out.plan.nodes.push(entry);
    const nr = byNode.get(p.name);
    if (!nr) {
      out.unsent.push(p.name);
      continue;
    }
    const st = nr.status;
    const answered = st?.runID === nr.spec.runID && (st.phase === 'Checked' || st.phase === 'Failed');
    if (!answered) {
      out.silent.push(p.name);
      continue;
    }
    out.reported++;
    if (st.phase === 'Failed') {
      out.failed.push(p.name);
      continue;
    }
    const files = st.files ?? [];
    const paths = files.map((f) => f.path);
    const size = JSON.stringify(paths).length;
    if (used + size <= budget) {
      entry.files = paths;
      used += size;
    } else out.filesOmitted++;
    for (const f of files) {
      if (!f.notAfter) continue;
      const best = earliest.get(f.service);
      if (!best || Date.parse(f.notAfter) < Date.parse(best.notAfter)) earliest.set(f.service, { service: f.service, notAfter: f.notAfter, node: p.name, path: f.path });
    }
    for (const [service, notAfter] of earliestByService(files, 'notAfter')) perNode.push({ node: p.name, service, notAfter });
  }
  const expiry = [...earliest.values()].sort((a, b) => Date.parse(a.notAfter) - Date.parse(b.notAfter) || (a.service < b.service ? -1 : 1));
  if (expiry.length > 0) out.plan.earliestExpiry = expiry;
  return out;
}
