// `mode: Plan`: publish what an Apply run would do, change nothing. The plan
// (order, batches, services per node) is exact: it is the same planRotation an
// Apply run freezes. What Plan mode does NOT publish yet: the files per node
// and the earliest notAfter per service. Both need reading certificates on
// the hosts, which only agents can do, and an agent only acts on a
// NodeRotation; publishing catalog paths or guessed dates instead would be
// fake precision (a custom data-dir changes every path). They are left empty.
import type { CertificateRotationStatus } from '../api/certificaterotation.js';
import type { Plan } from './plan.js';

export function planStatus(plan: Plan): NonNullable<CertificateRotationStatus['plan']> {
  return {
    nodes: plan.nodes.map((n) => ({ name: n.name, role: n.role, batch: n.batch, services: [...n.services] })),
  };
}
