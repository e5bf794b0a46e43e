// kstatus (kubernetes-sigs/cli-utils pkg/kstatus/status), the computation Flux's
// health checks and `kpt live status` use, for a custom resource: only the
// generic rules apply (generation.go/generic.go and the Current fallback in
// Compute). Ported rule for rule so a test can hold our status to it.
export type KStatus = 'InProgress' | 'Failed' | 'Current' | 'Terminating';

interface Obj {
  kind?: string;
  metadata?: { generation?: number; deletionTimestamp?: string };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string; message?: string }[] };
}

export function kstatus(o: Obj): { status: KStatus; message: string } {
  if (o.metadata?.deletionTimestamp) return { status: 'Terminating', message: 'Resource scheduled for deletion' };
  const generation = o.metadata?.generation;
  const observed = o.status?.observedGeneration;
  if (generation !== undefined && observed !== undefined && observed !== generation) {
    return { status: 'InProgress', message: `${o.kind} generation is ${generation}, but latest observed generation is ${observed}` };
  }
  // In list order: the first Reconciling=True or Stalled=True decides.
  for (const c of o.status?.conditions ?? []) {
    if (c.type === 'Reconciling' && c.status === 'True') return { status: 'InProgress', message: c.message ?? '' };
    if (c.type === 'Stalled' && c.status === 'True') return { status: 'Failed', message: c.message ?? '' };
  }
  return { status: 'Current', message: 'Resource is current' };
}
