// Whether a pass may leave its status write for a later pass ("hold"), and
// if not, why not: a chain of small pure rules, each naming a reason to write
// now, in the manner of cert-manager's renewal policies.
//
// Why hold at all: once a node named in status.nextNodes may be created
// before the write (cascade.ts), most passes of a busy run write only
// bookkeeping: a node finished, a named one started, the counts moved. At
// maxUnavailable 50 and agents that take ~2 s that is a status write for
// every report, each a full-object PUT that the API server and etcd must
// process, and each keeps the single worker waiting while the next report
// queues behind it. Held, the pass sends the creates of named nodes and
// returns; a later pass, deciding from the same written status and the
// NodeRotations, reaches the same changes (reports are re-read, created named
// nodes are adopted) and writes them all at once, with their Events.
//
// What a hold may never delay: a node whose start no written status records
// yet (its create must follow a write: the crash-safety argument of
// cascade.ts), a change a person or a GitOps tool acts on (phase, conditions,
// generation, a failure), and the refill of the named window before it runs
// dry. Only passes with two nodes or more in flight hold, so the server phase
// and maxUnavailable 1 write at every hand-off as before. Status lags the
// cluster by at most STATUS_HOLD_MS.
import type { CertificateRotationStatus } from '../api/certificaterotation.js';
import { NEXT_NODES } from '../api/constants.js';
import type { CascadeDecision } from './cascade.js';
import { jsonEqual } from './status-writer.js';

/** The longest a written status may lag what the controller has decided (the controller process's setting). */
export const STATUS_HOLD_MS = 1_000;

/** A pass writes once fewer than this many of the nodes its status named next remain unstarted. */
export const REFILL_BELOW = NEXT_NODES / 2;

export interface HoldInput {
  /** The status the pass decided from, as written. */
  base: CertificateRotationStatus;
  /** The status the pass would write. */
  next: CertificateRotationStatus;
  decision: Pick<CascadeDecision, 'create' | 'createFirst' | 'events' | 'finished' | 'next'>;
  /** When this process wrote `base` (the kept run, run-index.ts); undefined when it did not, or does not know. */
  writtenAtMs: number | undefined;
  /** How long a written status may lag (RunIndex.statusHoldMs); 0: never hold. */
  holdMs: number;
  nowMs: number;
  /** The distribution has steps of its own after every write (RKE: the run's bundle, made after the first write and sealed to nodes as they wait). */
  stepsFollowWrite: boolean;
}

export type HoldVerdict = { hold: true; untilMs: number } | { hold: false; reason: string };

/** Fields that only count progress: a hold may leave them behind. Everything else a pass changes is written at once. */
const BOOKKEEPING = ['progress', 'current', 'nodes', 'counts', 'nextNodes', 'conditions'] as const;

type Rule = (i: HoldInput) => string | undefined;

const RULES: readonly Rule[] = [
  (i) => (i.holdMs <= 0 ? 'holding is off' : undefined),
  (i) => (i.writtenAtMs === undefined ? 'no write of this process to hold after' : undefined),
  (i) => (i.nowMs - i.writtenAtMs! >= i.holdMs ? `the written status is ${i.holdMs} ms old` : undefined),
  (i) => (i.decision.create.length > 0 ? `${i.decision.create.length} node(s) start that no written status names yet` : undefined),
  (i) => (i.stepsFollowWrite ? "this distribution's steps follow every write" : undefined),
  // One node at a time (the servers, maxUnavailable 1): no other report could share the write, and
  // a person watching a server's restart sees its row move at once.
  (i) => ((i.next.nodes ?? []).filter((n) => n.phase === 'Updating').length < 2 ? 'fewer than 2 nodes in flight' : undefined),
  (i) => (i.decision.events.some((e) => e.type === 'Warning') ? 'a warning is reported at once' : undefined),
  (i) => (i.decision.finished.some((f) => f.phase !== 'Rotated') ? 'a node stopped without rotating' : undefined),
  (i) => (conditionsMoved(i.base, i.next) ? 'a condition changed' : undefined),
  (i) => {
    const changed = Object.keys({ ...i.base, ...i.next }).filter((k) => !(BOOKKEEPING as readonly string[]).includes(k) && !jsonEqual(i.base[k as keyof CertificateRotationStatus], i.next[k as keyof CertificateRotationStatus]));
    return changed.length > 0 ? `status.${changed.sort().join(', status.')} changed` : undefined;
  },
  (i) => {
    const named = new Set(i.base.nextNodes ?? []);
    const left = i.decision.next.filter((n) => named.has(n)).length;
    return left < Math.min(REFILL_BELOW, i.decision.next.length) ? `${left} of the nodes named next are left unstarted` : undefined;
  },
];

/** Whether the pass may hold its write, and until when a later pass must write. */
export function holdVerdict(i: HoldInput): HoldVerdict {
  for (const rule of RULES) {
    const reason = rule(i);
    if (reason !== undefined) return { hold: false, reason };
  }
  return { hold: true, untilMs: i.writtenAtMs! + i.holdMs };
}

/** A condition appeared, went, or changed its status, reason or observedGeneration (its message may count progress). */
function conditionsMoved(a: CertificateRotationStatus, b: CertificateRotationStatus): boolean {
  const key = (s: CertificateRotationStatus) =>
    (s.conditions ?? [])
      .map((c) => `${c.type}=${c.status}/${c.reason}/${c.observedGeneration}`)
      .sort()
      .join(';');
  return key(a) !== key(b);
}
