// NodeRotation creates that run behind the reconcile instead of inside it.
//
// A pass records intent in status (one fenced write) and then creates the
// NodeRotations that intent announces. Awaiting those creates inside the pass
// kept the single worker busy for a whole extra round trip (50 creates at
// maxUnavailable 50), and every agent report that arrived meanwhile waited
// behind it: that wait was most of the hand-off latency at 500 nodes.
//
// So the pass hands the creates to this pipeline and returns once its status
// write is done. What keeps this as safe as before:
// - Intent before create still holds: a create is only ever started after a
//   status write that records it succeeded (this pass's, or for a node in
//   status.nextNodes an earlier one: cascade.ts), and the objects are
//   deterministic (same name on every pass and after a restart).
// - A later pass that sees an Updating node without its NodeRotation (its
//   create still in flight) does not send it again: `pending(name)` says so.
//   After a crash nothing is pending and the create is sent again, as before.
// - A pass decides from the cache as it was when the pass began, and its
//   status write takes a round trip; an earlier pass's create of the same
//   object may finish meanwhile. So `exists` is asked once more right before
//   sending: at 500 nodes, skipping those took 400 of 900 creates (all 409
//   AlreadyExists) off a busy API server.
// - A create that fails is reported to `onError` (the controller requeues the
//   rotation with backoff); the next pass sees the object missing and creates it.
// - Deleting a rotation waits for its creates first (`settled(rotation)`), so
//   no NodeRotation can appear after the finalizer removed the others; so does
//   shutdown, so a stopped (or demoted) controller writes nothing afterwards.
import type { NodeRotation } from '../api/noderotation.js';

export interface CreatePipelineOptions {
  /** One API create; an existing object of that name is not an error. */
  create: (nr: NodeRotation) => Promise<unknown>;
  /** A create failed (not AlreadyExists): the rotation needs another pass. */
  onError: (rotation: string, nodeRotation: string, err: unknown) => void;
  /** True when the object is known to exist (in the cache, or created by us): its create is skipped. */
  exists?: (nodeRotation: string) => boolean;
  /** Creates in flight at once, all rotations together. Default 64. */
  concurrency?: number;
}

export class CreatePipeline {
  private readonly inFlight = new Map<string, { rotation: string; done: Promise<void> }>();
  private readonly waiting: (() => void)[] = [];
  private running = 0;
  private readonly concurrency: number;

  constructor(private readonly opts: CreatePipelineOptions) {
    this.concurrency = Math.max(1, opts.concurrency ?? 64);
  }

  /**
   * Starts creating `objects` of `rotation` (their intent must already be
   * persisted) and returns at once. Objects whose create is still in flight
   * are not sent again.
   */
  start(rotation: string, objects: readonly NodeRotation[]): void {
    for (const nr of objects) {
      const name = nr.metadata.name!;
      if (this.inFlight.has(name)) continue;
      const done = this.run(rotation, nr).finally(() => this.inFlight.delete(name));
      this.inFlight.set(name, { rotation, done });
    }
  }

  /** True while the create of this NodeRotation is in flight. */
  pending(nodeRotation: string): boolean {
    return this.inFlight.has(nodeRotation);
  }

  /** How many creates are in flight (for tests and logs). */
  get size(): number {
    return this.inFlight.size;
  }

  /** Resolves once every create of `rotation` (every create at all, when omitted) has finished, successfully or not. */
  async settled(rotation?: string): Promise<void> {
    for (;;) {
      const open = [...this.inFlight.values()].filter((f) => rotation === undefined || f.rotation === rotation);
      if (open.length === 0) return;
      await Promise.all(open.map((f) => f.done));
    }
  }

  private async run(rotation: string, nr: NodeRotation): Promise<void> {
    if (this.running < this.concurrency) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // the slot is handed over by release
    try {
      if (!this.opts.exists?.(nr.metadata.name!)) await this.opts.create(nr);
    } catch (err) {
      try {
        this.opts.onError(rotation, nr.metadata.name!, err);
      } catch {
        /* a reporting failure must not turn into an unhandled rejection */
      }
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
