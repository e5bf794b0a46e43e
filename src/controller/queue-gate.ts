// One rotation at a time, cluster-wide (design.md §1.1): restarting the
// control plane for two rotations at once could take two servers down
// together, which is exactly what the cascade exists to prevent.
//
// The slot is decided from the CertificateRotations themselves, no lock
// object: the controller is the only writer of their status and processes one
// rotation at a time (one worker), and its reads include its own latest writes
// (run.ts), so two rotations can never both see the slot free.
import type { CertificateRotation } from '../api/certificaterotation.js';
import type { NodeRotation } from '../api/noderotation.js';
import { FINISHED_BY_AGENT, preRunProblem, runActive, settled } from './run-state.js';

function createdAt(r: CertificateRotation): number {
  const t = r.metadata.creationTimestamp;
  return t ? new Date(t as unknown as string).getTime() : 0;
}

/** Oldest first; by name when created in the same second, so every replica agrees. */
export function queueOrder(a: CertificateRotation, b: CertificateRotation): number {
  const d = createdAt(a) - createdAt(b);
  if (d !== 0) return d;
  const an = a.metadata.name ?? '';
  const bn = b.metadata.name ?? '';
  return an < bn ? -1 : an > bn ? 1 : 0;
}

/** Would this rotation start a run if the slot were free? */
export function wantsToRun(r: CertificateRotation): boolean {
  if (r.metadata.deletionTimestamp) return false;
  if (r.spec.mode !== 'Apply') return false;
  if (runActive(r.status)) return true;
  if (settled(r)) return false;
  // A pre-run problem (bad service, no nodes…) waits for a person, not for the slot.
  return !(preRunProblem(r.status) && r.status?.observedGeneration === r.metadata.generation);
}

/**
 * The rotation `me` must wait for, or undefined when `me` may run now:
 * first any rotation with a run in progress (paused ones included: their
 * cluster is half-rotated), then any rotation (`me`'s earlier runs included)
 * with a NodeRotation its agent has not reported finished — a run that
 * stopped on nodeTimeout leaves that node's agent possibly still restarting
 * it, and starting another server next to it is how etcd loses quorum —
 * else any older rotation that also wants to run.
 */
export function slotHolder(
  me: CertificateRotation,
  all: readonly CertificateRotation[],
  nodeRotationsOf: (rotation: string) => readonly NodeRotation[] = () => [],
  // A NodeRotation of a node that no longer exists never reports: it holds nothing.
  nodeExists: (name: string) => boolean = () => true,
): string | undefined {
  const others = all.filter((r) => r.metadata.name !== me.metadata.name);
  const running = others.filter((r) => runActive(r.status)).sort(queueOrder)[0];
  if (running) return running.metadata.name;
  for (const r of [...all].sort(queueOrder)) {
    // A Check (mode: Plan) restarts nothing: it never holds the slot.
    const open = nodeRotationsOf(r.metadata.name!).filter(
      (nr) => nr.spec.action !== 'Check' && !(nr.status && FINISHED_BY_AGENT.includes(nr.status.phase)) && nodeExists(nr.spec.nodeName),
    );
    if (open.length > 0) return `${r.metadata.name} (${inFlight(open)})`;
  }
  const ahead = others.filter((r) => wantsToRun(r) && queueOrder(r, me) < 0).sort(queueOrder)[0];
  return ahead?.metadata.name;
}

// Which nodes hold the slot, since when, and the one command that lets it go
// when an agent is gone for good (its host reinstalled, its pod never coming
// back): a final report written by hand. Deleting the NodeRotation is not the way:
// only the controller may (charts/certrotator/templates/noderotation-policy.yaml),
// and the report keeps the record of what happened.
function inFlight(open: readonly NodeRotation[]): string {
  const sorted = [...open].sort((a, b) => (a.spec.nodeName < b.spec.nodeName ? -1 : 1));
  const nodes = sorted.map((nr) => {
    const since = nr.status?.startedAt ?? (nr.metadata.creationTimestamp as unknown as string | undefined);
    return `node ${nr.spec.nodeName}${since ? ` since ${new Date(since).toISOString().replace(/\.\d{3}Z$/, 'Z')}` : ''}`;
  });
  const first = sorted[0]!;
  const release = `kubectl patch noderotation ${first.metadata.name} --subresource=status --type=merge -p '{"status":{"phase":"Failed","runID":"${first.spec.runID}","message":"released by hand: agent gone"}}'`;
  return `${nodes.join(', ')} still in flight with no final report from its agent; if an agent is gone for good, release its node with: ${release}${sorted.length > 1 ? ' (and the same for the others)' : ''}`;
}
