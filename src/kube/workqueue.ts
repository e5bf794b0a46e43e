// A keyed work queue with the semantics of client-go's workqueue
// (k8s.io/client-go/util/workqueue) and the reconcile contract of
// controller-runtime. Informer handlers only add keys; workers read the
// current state from the cache. Because a key, not an event, is queued, a
// burst of events for one object collapses into a single reconcile, and
// the reconcile is level-based by construction.
//
// The guarantees the controller relies on:
// - a key is never processed by two workers at once (a key added while it
//   is being processed is parked in `dirty` and queued again when `done`);
// - a key is queued at most once however often it is added;
// - failures are retried with per-key exponential backoff, reset by `forget`;
// - `addAfter` keeps only the earliest pending deadline per key.

/** What a reconcile may ask for; returning nothing means "done until the next event". */
export interface ReconcileResult {
  /** Reconcile again after this delay (e.g. wait for a node step's deadline). Not counted as a failure. */
  requeueAfterMs?: number;
  /** Reconcile again with the rate-limited backoff, as for a failure, without logging an error. */
  requeue?: boolean;
}

export type Reconciler = (key: string) => Promise<ReconcileResult | void>;

/** Per-key delay source for `addRateLimited` (client-go's RateLimiter). */
export interface RateLimiter {
  /** Delay before the next retry of `key`; every call counts as one more failure. */
  when(key: string): number;
  /** Forget the failures of `key` (after a success). */
  forget(key: string): void;
  /** How many failures of `key` are counted. */
  retries(key: string): number;
}

/**
 * Per-key exponential backoff: base * 2^failures, capped.
 *
 * Default 1 s → 5 min. Why not client-go's 5 ms: our failures are API errors
 * (conflicts, timeouts, admission) and a 409 is already followed by the watch
 * event that re-adds the key with fresh state, so sub-second retries only add
 * API load. 1 s still retries a transient error before anybody notices, and
 * the cap of 5 min (cert-manager's default) keeps a broken object retried
 * often enough to see it heal without hammering the API server: the cap is
 * reached after 9 consecutive failures (1+2+…+256 s ≈ 8.5 min).
 */
export class ExponentialBackoffRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();

  constructor(
    readonly baseMs = 1000,
    readonly maxMs = 5 * 60 * 1000,
  ) {
    if (baseMs <= 0 || maxMs < baseMs) throw new Error(`invalid backoff: base ${baseMs} ms, max ${maxMs} ms`);
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity long after the cap; Math.min handles it.
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/** Hooks for metrics; the observability package plugs prom-client in here. */
export interface WorkQueueHooks {
  onAdd?(key: string): void;
  onRetry?(key: string): void;
  onReconcile?(key: string, outcome: 'success' | 'error' | 'requeue', durationMs: number): void;
  onError?(key: string, err: unknown, retries: number): void;
}

export interface WorkQueueOptions {
  /** Name used in logs and metrics labels. */
  name?: string;
  rateLimiter?: RateLimiter;
  hooks?: WorkQueueHooks;
}

export class WorkQueue {
  readonly name: string;
  private readonly rateLimiter: RateLimiter;
  private readonly hooks: WorkQueueHooks;
  /** FIFO of keys ready to be handed to a worker; every key here is also in `dirty`. */
  private readonly queue: string[] = [];
  /** Keys that need processing (queued, or added again while being processed). */
  private readonly dirty = new Set<string>();
  /** Keys a worker holds right now. */
  private readonly processing = new Set<string>();
  /** Delayed adds: key → the earliest pending deadline and its timer. */
  private readonly waiting = new Map<string, { at: number; timer: ReturnType<typeof setTimeout> }>();
  /** Workers blocked in `get()`. */
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private shuttingDown = false;
  private workers: Promise<void>[] = [];

  constructor(opts: WorkQueueOptions = {}) {
    this.name = opts.name ?? 'default';
    this.rateLimiter = opts.rateLimiter ?? new ExponentialBackoffRateLimiter();
    this.hooks = opts.hooks ?? {};
  }

  /** Marks `key` as needing processing. Idempotent while the key is queued. */
  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    this.hooks.onAdd?.(key);
    // A worker holds it: `done` queues it again, so it is never processed twice at once.
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds `key` after `ms`; if the key already waits for an earlier time, that one stands. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const pending = this.waiting.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, ms);
    this.waiting.set(key, { at, timer });
  }

  /** Adds `key` after the rate limiter's backoff for it; each call counts as a failure. */
  addRateLimited(key: string): void {
    this.hooks.onRetry?.(key);
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Resets the backoff of `key` (after a successful reconcile). Does not remove a pending add. */
  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.retries(key);
  }

  /** Keys ready to process (not counting delayed or in-flight ones). */
  len(): number {
    return this.queue.length;
  }

  /** Number of keys waiting for a delayed add. */
  waitingLen(): number {
    return this.waiting.size;
  }

  inFlight(): number {
    return this.processing.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Waits for a key and marks it as being processed; resolves `undefined`
   * once the queue shuts down. The caller must call `done(key)`.
   */
  get(): Promise<string | undefined> {
    // Unlike client-go, queued keys are not handed out after shutDown: we shut
    // down when leadership is lost, and then every further write is unfenced.
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.take();
    if (key !== undefined || this.shuttingDown) return Promise.resolve(key);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Ends processing of `key`; if it was added meanwhile, it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
    if (this.processing.size === 0) this.idleWaiters.splice(0).forEach((w) => w());
  }

  /**
   * Starts `concurrency` workers that call `reconcile` with the
   * controller-runtime contract: resolve → forget the backoff (and requeue
   * after `requeueAfterMs` if asked); throw → rate-limited retry.
   * Resolves when the queue is shut down and every worker has finished.
   */
  run(concurrency: number, reconcile: Reconciler): Promise<void> {
    if (concurrency < 1) throw new Error('concurrency must be at least 1');
    for (let i = 0; i < concurrency; i++) this.workers.push(this.worker(reconcile));
    return Promise.all(this.workers).then(() => undefined);
  }

  /**
   * Stops accepting keys, wakes idle workers and waits for the reconciles in
   * flight to finish (their keys are not retried). Queued keys are dropped:
   * the next leader rebuilds them from its informers' initial list.
   */
  async shutDown(): Promise<void> {
    this.shuttingDown = true;
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    this.waiters.splice(0).forEach((w) => w(undefined));
    if (this.processing.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await Promise.all(this.workers);
  }

  private push(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      this.queue.push(key);
      waiter(this.take());
      return;
    }
    this.queue.push(key);
  }

  private take(): string | undefined {
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }

  private async worker(reconcile: Reconciler): Promise<void> {
    for (;;) {
      const key = await this.get();
      if (key === undefined) return;
      const started = performance.now();
      try {
        const result = await reconcile(key);
        if (result?.requeue) {
          this.hooks.onReconcile?.(key, 'requeue', performance.now() - started);
          this.addRateLimited(key);
        } else {
          this.hooks.onReconcile?.(key, 'success', performance.now() - started);
          this.forget(key);
          if (result?.requeueAfterMs !== undefined && result.requeueAfterMs >= 0) this.addAfter(key, result.requeueAfterMs);
        }
      } catch (err) {
        this.hooks.onReconcile?.(key, 'error', performance.now() - started);
        this.hooks.onError?.(key, err, this.rateLimiter.retries(key));
        this.addRateLimited(key);
      } finally {
        this.done(key);
      }
    }
  }
}
