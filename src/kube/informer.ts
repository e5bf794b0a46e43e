// A shared-informer-like cache over a ListWatch (list-watch.ts, which keeps
// client-node's ListWatch's contract), hardened for a long-running controller.
//
// What ListWatch does not do, and this wrapper adds:
// - ListWatch STOPS on any error other than 410 Gone or a client timeout
//   (a refused connection, a 5xx, a reset stream, a failed list). The caller
//   must restart it; we do, with capped exponential backoff, forever. A
//   watch error never exits the process (the known failure of
//   @dot-i/k8s-operator, which calls process.exit(1)).
// - ListWatch's own `stop()` aborts the request, and the abort comes back
//   through the `error` callback; we ignore errors of an informer we stopped.
// - There is no "synced" signal; we mark synced when the first list has been
//   applied to the cache (start() resolved without an error in between), so
//   readiness and the controller's first reconciles see a complete cache.
// - There is no resync. Every `resyncPeriodMs` we enqueue every key of the
//   cache again, as client-go's resync does: from memory, no LIST. The API
//   server is listed only at start and when the watch cannot resume (410
//   Gone, which ListWatch handles by relisting); after any other error the
//   watch resumes from its last resourceVersion, which replays whatever was
//   missed, deletes included. At 10,000 agents a periodic relist would be
//   about 17 LIST+WATCH per second against the API server for nothing.
//   Level-based reconcile makes the extra reconciles harmless.
// - `labelSelector` is only applied to the watch by ListWatch; the list
//   function we build applies the same selector.
//
// - Cached objects are kept without metadata.managedFields (client-go's
//   TransformStripManagedFields): nothing here reads them, and they are
//   often as large as the rest of the object.
//
// Handlers only enqueue keys (sample-controller style): reconcile always
// reads the current object from the cache, never the event payload.
import type { KubernetesListObject, KubernetesObject, V1Node } from '@kubernetes/client-node';
import type { ClusterCustomResource, CustomObject } from './client.js';
import type { KubeAccess } from './kubeconfig.js';
import { ListWatch, type Watcher } from './list-watch.js';
import { transportFor } from './transport.js';

/** Minimal logger (pino's signature) so this file does not depend on a logging setup. */
export interface InformerLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silentLogger: InformerLogger = { debug() {}, info() {}, warn() {} };

/** Anything with `add(key)`: a WorkQueue, or a test double. */
export interface KeySink {
  add(key: string): void;
}

/** Maps an object to the keys to enqueue (default: its own key). */
export type KeysOf<T> = (obj: T) => string | string[] | undefined;

/** client-go's MetaNamespaceKeyFunc: `name` for cluster-scoped, `namespace/name` otherwise. */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name ?? '';
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

/** Splits a key made by `objectKey`. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export interface InformerOptions<T extends KubernetesObject> {
  /** Starts the watches (`watcherFor(kc)`). */
  watcher: Watcher;
  /** Collection path, e.g. `/api/v1/nodes` or `/apis/certrotator.io/v1alpha1/noderotations`. */
  path: string;
  /**
   * Lists the collection; receives the label selector and must apply it, and
   * the cache's transform, which it applies to each object (page by page, where
   * it can, so a large list never holds every whole object at once).
   */
  list: (labelSelector: string | undefined, transform: (obj: T) => T) => Promise<KubernetesListObject<T>>;
  /** e.g. `certrotator.io/node=rke2-worker-1`: the agent sees only its own node's objects. */
  labelSelector?: string;
  /** Name for logs. */
  name?: string;
  logger?: InformerLogger;
  /** Enqueue every cached key again this often, from the cache (0 disables). Default 10 min. */
  resyncPeriodMs?: number;
  /** Restart backoff after errors. Default 1 s → 30 s (ListWatch's own reconnect range). */
  restartBackoff?: { baseMs: number; maxMs: number };
  /** Called on every watch/list error (for a metric). */
  onError?: (err: unknown) => void;
  /**
   * Applied to every object before it is cached (list items and watch
   * events); may change it in place. Default `stripManagedFields`.
   */
  transform?: (obj: T) => T;
}

/** Drops metadata.managedFields (in place). */
export function stripManagedFields<T extends KubernetesObject>(obj: T): T {
  if (obj?.metadata?.managedFields !== undefined) delete obj.metadata.managedFields;
  return obj;
}

/**
 * The watcher of a kubeconfig: the lean transport (src/kube/transport.ts), or
 * client-node's Watch for a kubeconfig the transport does not speak (a proxy),
 * imported only then.
 */
export function watcherFor(kc: KubeAccess): Watcher {
  const transport = transportFor(kc);
  if (transport) return transport;
  return {
    async watch(path, query, callback, done) {
      const [{ Watch }, config] = await Promise.all([import('@kubernetes/client-node'), kc.clientNode()]);
      return new Watch(config).watch(path, query, callback, done);
    },
  };
}

/**
 * A watcher whose events carry transformed objects. Only objects: an ERROR
 * event's Status must reach ListWatch whole (its `code` 410 is what makes it
 * relist; a planner's view of a Status has no code), and a BOOKMARK carries
 * nothing but a resourceVersion.
 */
function transforming<T extends KubernetesObject>(watcher: Watcher, transform: (obj: T) => T): Watcher {
  return {
    watch: (path, query, callback, done) =>
      watcher.watch(path, query, (type, obj, event) => callback(type, OBJECT_EVENTS.has(type) && obj && typeof obj === 'object' ? transform(obj as T) : obj, event), done),
  };
}

const OBJECT_EVENTS: ReadonlySet<string> = new Set(['ADDED', 'MODIFIED', 'DELETED']);

export class Informer<T extends KubernetesObject> {
  readonly name: string;
  private readonly opts: InformerOptions<T>;
  private readonly log: InformerLogger;
  private readonly resyncPeriodMs: number;
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly sinks: { sink: KeySink; keysOf: KeysOf<T> }[] = [];
  private current: ListWatch<T> | undefined;
  private synced = false;
  private stopped = true;
  private consecutiveFailures = 0;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private resyncTimer: ReturnType<typeof setTimeout> | undefined;
  private restarts = 0;
  private syncWaiters: (() => void)[] = [];
  /** Adds, updates and deletes applied to the cache so far (what `list` is memoised on). */
  private changes = 0;
  private listed: { lw: ListWatch<T>; changes: number; items: readonly T[] } | undefined;

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
    this.name = opts.name ?? opts.path;
    this.log = opts.logger ?? silentLogger;
    this.resyncPeriodMs = opts.resyncPeriodMs ?? 10 * 60 * 1000;
    this.backoff = opts.restartBackoff ?? { baseMs: 1000, maxMs: 30_000 };
  }

  /**
   * Enqueue the keys of every added, updated and deleted object into `sink`.
   * The only kind of handler there is: handlers must not do work.
   */
  enqueueTo(sink: KeySink, keysOf: KeysOf<T> = objectKey): this {
    this.sinks.push({ sink, keysOf });
    return this;
  }

  /** Starts listing and watching; returns at once. Errors are retried, never thrown. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const lw = this.makeListWatch();
    this.current = lw;
    this.attach(lw);
    void this.run(lw, 'initial list');
  }

  /** Stops the watch and the timers. The cache stays readable. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.resyncTimer);
    const lw = this.current;
    if (lw) void lw.stop();
  }

  /** True once the first list has been applied to the cache (client-go HasSynced). */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once synced; rejects after `timeoutMs`. */
  waitForSync(timeoutMs = 60_000): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`informer ${this.name} not synced after ${timeoutMs} ms`)), timeoutMs);
      this.syncWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The cached object by name (and namespace for namespaced resources). */
  get(name: string, namespace?: string): T | undefined {
    return this.current?.get(name, namespace);
  }

  /** The cached object for a key made by `objectKey`. */
  getByKey(key: string): T | undefined {
    const { namespace, name } = splitKey(key);
    return this.get(name, namespace);
  }

  /**
   * Every cached object (or a namespace's). The whole list is made once per
   * change of the cache and then handed out again: callers must not change
   * it, and one that gets the same array back knows nothing changed (the
   * controller lists 5,000 Nodes on every pass).
   */
  list(namespace?: string): readonly T[] {
    const lw = this.current;
    if (!lw) return [];
    if (namespace !== undefined) return lw.list(namespace);
    const l = this.listed;
    if (l && l.lw === lw && l.changes === this.changes) return l.items;
    const items = lw.list();
    this.listed = { lw, changes: this.changes, items };
    return items;
  }

  keys(): string[] {
    return this.list().map(objectKey);
  }

  /** How many times the watch was restarted after an error (for tests and metrics). */
  restartCount(): number {
    return this.restarts;
  }

  private makeListWatch(): ListWatch<T> {
    const { path, labelSelector, list } = this.opts;
    const transform = this.opts.transform ?? stripManagedFields;
    return new ListWatch<T>(path, transforming(this.opts.watcher, transform), () => list(labelSelector, transform), labelSelector);
  }

  private attach(lw: ListWatch<T>): void {
    const enqueue = (obj: T): void => {
      // ListWatch changes its cache before it calls us, and calls us for every change.
      this.changes++;
      if (lw !== this.current) return;
      this.enqueue(obj);
    };
    lw.on('add', enqueue);
    lw.on('update', enqueue);
    lw.on('delete', enqueue);
    lw.on('error', (err: unknown) => this.onListWatchError(lw, err));
  }

  private enqueue(obj: T): void {
    for (const { sink, keysOf } of this.sinks) {
      const keys = keysOf(obj);
      if (keys === undefined) continue;
      for (const key of Array.isArray(keys) ? keys : [keys]) sink.add(key);
    }
  }

  /** Starts `lw` (list, then watch) and records whether it got there without an error. */
  private async run(lw: ListWatch<T>, why: string): Promise<void> {
    const failuresBefore = this.consecutiveFailures;
    this.log.debug({ informer: this.name, why }, 'informer starting');
    await lw.start();
    if (this.stopped || lw !== this.current) return;
    if (this.consecutiveFailures !== failuresBefore) return; // the error handler scheduled a restart
    this.consecutiveFailures = 0;
    this.markSynced();
    this.scheduleResync();
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.log.info({ informer: this.name, objects: this.list().length }, 'informer synced');
    this.syncWaiters.splice(0).forEach((w) => w());
  }

  private onListWatchError(lw: ListWatch<T>, err: unknown): void {
    // Our own stop() aborts the request and the abort arrives here: not a failure.
    if (this.stopped || lw !== this.current) return;
    this.opts.onError?.(err);
    this.consecutiveFailures++;
    const delay = Math.min(this.backoff.baseMs * 2 ** (this.consecutiveFailures - 1), this.backoff.maxMs);
    this.log.warn(
      { informer: this.name, err: errorText(err), attempt: this.consecutiveFailures, retryInMs: delay },
      'list/watch failed; restarting',
    );
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped || lw !== this.current) return;
      this.restarts++;
      // Restarting the same ListWatch resumes from its last resourceVersion
      // (no relist, no duplicate adds); on 410 Gone it relists by itself.
      void this.run(lw, 'restart after error');
    }, delay);
  }

  private scheduleResync(): void {
    clearTimeout(this.resyncTimer);
    if (this.resyncPeriodMs <= 0 || this.stopped) return;
    this.resyncTimer = setTimeout(() => this.resync(), this.resyncPeriodMs);
  }

  /** Enqueues every cached key again (client-go's resync): from the cache, no request to the API server. */
  resync(): void {
    if (this.stopped) return;
    const objects = this.list();
    for (const obj of objects) this.enqueue(obj);
    this.log.debug({ informer: this.name, objects: objects.length }, 'informer resynced from its cache');
    this.scheduleResync();
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: string } }).cause;
    const status = (err as { statusCode?: number; code?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    return [err.name, err.message, typeof status === 'number' ? `HTTP ${status}` : undefined, cause?.code].filter(Boolean).join(': ');
  }
  return String(err);
}

/** Informer over core v1 Nodes (the controller plans from them). */
export function nodeInformer(kc: KubeAccess, opts: Omit<InformerOptions<V1Node>, 'watcher' | 'path' | 'list'> = {}): Informer<V1Node> {
  const transport = transportFor(kc);
  const core = kc.api((m) => m.CoreV1Api);
  return new Informer<V1Node>({
    name: 'nodes',
    ...opts,
    watcher: watcherFor(kc),
    path: '/api/v1/nodes',
    // Through the transport the list's Nodes are plain JSON, as the watch's are
    // (client-node's list would turn timestamps into Dates).
    list: async (labelSelector, transform) => {
      if (transport) return transport.list<KubernetesListObject<V1Node>>('/api/v1/nodes', { labelSelector }, { mapItem: transform });
      const list = (await core.listNode({ labelSelector })) as KubernetesListObject<V1Node>;
      return { ...list, items: list.items.map(transform) };
    },
  });
}

/** Informer over one of our cluster-scoped custom resources (see ClusterCustomResource). */
export function customResourceInformer<T extends CustomObject>(
  kc: KubeAccess,
  resource: ClusterCustomResource<T>,
  opts: Omit<InformerOptions<T>, 'watcher' | 'path' | 'list'> = {},
): Informer<T> {
  return new Informer<T>({
    name: resource.plural,
    ...opts,
    watcher: watcherFor(kc),
    path: resource.path,
    list: (labelSelector, transform) => resource.list(labelSelector, transform),
  });
}
