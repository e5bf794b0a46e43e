// What the writer of the real-component suites saw (test/e2e/support/real-checks.ts
// Traffic), and the oracle that judges it against the servers' restart windows.
import { isServerRole, type Interval } from './rotation.js';

export class WriteLog {
  attempted = 0;
  acked: string[] = [];
  /** When each acknowledged write was sent (ms since the epoch). */
  ackedAt: number[] = [];
  failures: string[] = [];
  /** When each failed write was sent (ms since the epoch), to say which window the failures fell in. */
  failedAt: number[] = [];

  recordAck(name: string, sentAt: number): void {
    this.acked.push(name);
    this.ackedAt.push(sentAt);
  }

  recordFailure(what: string, sentAt: number): void {
    this.failures.push(what);
    this.failedAt.push(sentAt);
  }

  availability(): number {
    return this.attempted === 0 ? 1 : this.acked.length / this.attempted;
  }

  /** The share of the writes sent between `start` and `end` (ms) that were acknowledged; 1 if none were sent. */
  availabilityBetween(start: number, end: number): number {
    const inside = (t: number): boolean => t >= start && t <= end;
    const acked = this.ackedAt.filter(inside).length;
    const sent = acked + this.failedAt.filter(inside).length;
    return sent === 0 ? 1 : acked / sent;
  }
}

// The load balancer is TCP round robin over the servers' API servers and skips
// one that refuses the connection, as a layer-4 load balancer in front of an HA
// RKE2 or RKE cluster does. While a server restarts there is a moment when its
// kube-apiserver accepts connections but cannot answer: it is starting (503) or
// its own etcd member, the only one it talks to, is not serving yet (the write
// waits). How long that moment lasts is the machine's speed, not certrotator's
// (0 to 6 failed writes of 500-800 per scope All run on the development
// machine, 10 of 626 in one CI run), so a fixed 99% of all writes was not the oracle. What certrotator
// answers for is:
//   - no write fails outside a server's window (its NodeRotation's start to its
//     report): no restart it did not order, hand-offs and workers invisible;
//   - inside each window at least half are acknowledged: one of three API
//     servers failing costs about one write in three; more means the cluster,
//     not one member, stopped taking writes;
//   - at least 95% of all writes are acknowledged, so a window that grows long
//     without failing outright is still caught.
export const MIN_IN_SERVER_WINDOW = 0.5;
export const MIN_OVERALL = 0.95;

/** What one restarting server at a time does not explain in `log`: empty when the cluster kept serving. */
export function unexplainedWriteFailures(log: WriteLog, nodes: readonly Interval[]): string[] {
  const windows = nodes.filter((i) => isServerRole(i.role));
  const explained = (t: number): boolean => windows.some((w) => t >= w.start && t <= w.end);
  const problems = log.failures.filter((_, k) => !explained(log.failedAt[k]!)).map((f) => `failed outside every server's window: ${f}`);
  for (const w of windows) {
    const share = log.availabilityBetween(w.start, w.end);
    if (share < MIN_IN_SERVER_WINDOW) problems.push(`${w.node}: ${(share * 100).toFixed(1)}% acknowledged in its window, below ${MIN_IN_SERVER_WINDOW * 100}%`);
  }
  if (log.availability() < MIN_OVERALL) problems.push(`${(log.availability() * 100).toFixed(2)}% of all writes acknowledged, below ${MIN_OVERALL * 100}%`);
  return problems;
}
