// List, then watch from the list's resourceVersion, and keep a cache of the
// objects by namespace and name: what client-go's reflector and client-node's
// ListWatch do. Ours because client-node's ListWatch imports its serializer,
// which imports every generated model: most of client-node's memory
// (kubeconfig.ts).
//
// The contract is client-node's ListWatch's, which the Informer was written
// against (informer.ts adds restarts with backoff, sync and resync):
// - `start()` lists when there is no resourceVersion yet, or after 410 Gone,
//   and resolves once the watch request is under way. The list's objects
//   replace the cache: objects missing from it are deleted (with a `delete`
//   callback), the others added or updated.
// - The watch resumes from the last resourceVersion seen (an event's, or the
//   list's). When the server ends the watch, it resumes at once the first
//   time and after a growing delay when that keeps happening without events
//   (1 s doubling to 30 s); a client-side timeout (nothing received for 30 s)
//   resumes at once; 410 Gone relists.
// - Any other error (a refused connection, a 5xx, a failed list) goes to the
//   `error` callbacks, and the ListWatch stops until `start()` is called
//   again, which resumes from the last resourceVersion.
// - An update whose resourceVersion equals the cached one is not reported
//   (a relist that found nothing new).
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';

/** Starts a watch (transport.ts's ApiTransport, or client-node's Watch). */
export interface Watcher {
  watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (type: string, object: unknown, event: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController>;
}

type Handler<T> = (obj: T) => void;
type Verb = 'add' | 'update' | 'delete' | 'error';

export const BASE_RECONNECT_DELAY_MS = 1000;
export const MAX_RECONNECT_DELAY_MS = 30_000;

export class ListWatch<T extends KubernetesObject> {
  private objects = new Map<string, Map<string, T>>();
  private resourceVersion = '';
  private request: AbortController | undefined;
  private stopped = false;
  private hasConnected = false;
  private reconnectDelayMs = 0;
  /** Counts watches started, so only the newest one's end is acted on. */
  private generation = 0;
  private readonly handlers: Record<Verb, ((x: never) => void)[]> = { add: [], update: [], delete: [], error: [] };

  constructor(
    private readonly path: string,
    private readonly watcher: Watcher,
    private readonly listFn: () => Promise<KubernetesListObject<T>>,
    private readonly labelSelector?: string,
    private readonly delay: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  on(verb: 'add' | 'update' | 'delete', cb: Handler<T>): void;
  on(verb: 'error', cb: (err: unknown) => void): void;
  on(verb: Verb, cb: (x: never) => void): void {
    this.handlers[verb].push(cb);
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.hasConnected = false;
    this.reconnectDelayMs = 0;
    await this.connect(null);
  }

  stop(): void {
    this.stopped = true;
    this.abort();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(namespace ?? '')?.get(name);
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.objects.get(namespace)?.values() ?? [])];
    const all: T[] = [];
    for (const byName of this.objects.values()) for (const obj of byName.values()) all.push(obj);
    return all;
  }

  private abort(): void {
    const r = this.request;
    this.request = undefined;
    r?.abort();
  }

  /** Called at start and whenever a watch ends (`err` null when the server ended it). */
  private async connect(err: unknown): Promise<void> {
    this.abort();
    if (isGone(err)) {
      this.resourceVersion = '';
    } else if (err && (err as { name?: string }).name === 'TimeoutError') {
      // The timeout already waited 30 s: resume at once, or a quiet resource would go unwatched for longer.
      this.reconnectDelayMs = 0;
    } else if (err) {
      this.emit('error', err);
      return;
    }
    if (this.stopped) return;
    if (!this.resourceVersion) {
      let list: KubernetesListObject<T>;
      try {
        list = await this.listFn();
      } catch (e) {
        this.emit('error', e);
        return;
      }
      this.replace(list.items ?? []);
      this.resourceVersion = list.metadata?.resourceVersion ?? '';
    }
    if (this.reconnectDelayMs > 0 && this.hasConnected) await this.delay(this.reconnectDelayMs);
    if (this.hasConnected) this.reconnectDelayMs = Math.min(this.reconnectDelayMs > 0 ? this.reconnectDelayMs * 2 : BASE_RECONNECT_DELAY_MS, MAX_RECONNECT_DELAY_MS);
    this.hasConnected = true;
    if (this.stopped) return;
    const query: Record<string, string> = { resourceVersion: this.resourceVersion, allowWatchBookmarks: 'true' };
    if (this.labelSelector !== undefined) query.labelSelector = this.labelSelector;
    const generation = ++this.generation;
    let ended = false;
    const done = (e: unknown): void => {
      if (ended) return;
      ended = true;
      // A stopped ListWatch, or a watch that a newer one replaced, ends here.
      if (this.stopped || generation !== this.generation) return;
      void this.connect(e);
    };
    let request: AbortController;
    try {
      request = await this.watcher.watch(this.path, query, (type, obj) => this.onEvent(type, obj as T), done);
    } catch (e) {
      // Credentials that could not be read, a watch that could not be sent.
      done(e);
      return;
    }
    // The watch may have ended already (a refused request calls done before returning).
    if (!ended) this.request = request;
    if (this.stopped) this.abort();
  }

  private onEvent(type: string, obj: T): void {
    switch (type) {
      case 'ERROR':
        // The watch ends after this; its done relists.
        if ((obj as { code?: number }).code === 410) this.resourceVersion = '';
        return;
      case 'ADDED':
      case 'MODIFIED':
        this.put(obj);
        break;
      case 'DELETED':
        this.remove(obj);
        break;
      case 'BOOKMARK':
        break;
      default:
        return;
    }
    this.reconnectDelayMs = 0;
    this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
  }

  /** A list's objects become the cache: the missing ones are deleted, the others added or updated. */
  private replace(items: T[]): void {
    const listed = new Map<string, Set<string>>();
    for (const obj of items) {
      const ns = obj.metadata?.namespace ?? '';
      let names = listed.get(ns);
      if (!names) listed.set(ns, (names = new Set()));
      names.add(obj.metadata?.name ?? '');
    }
    for (const [ns, byName] of this.objects) {
      for (const [name, obj] of byName) if (!listed.get(ns)?.has(name)) this.remove(obj);
    }
    for (const obj of items) this.put(obj);
  }

  private put(obj: T): void {
    const ns = obj.metadata?.namespace ?? '';
    const name = obj.metadata?.name ?? '';
    let byName = this.objects.get(ns);
    if (!byName) this.objects.set(ns, (byName = new Map()));
    const found = byName.get(name);
    if (!found) {
      byName.set(name, obj);
      this.emit('add', obj);
    } else if (found.metadata?.resourceVersion == null || found.metadata.resourceVersion !== obj.metadata?.resourceVersion) {
      byName.set(name, obj);
      this.emit('update', obj);
    }
  }

  private remove(obj: T): void {
    const ns = obj.metadata?.namespace ?? '';
    const byName = this.objects.get(ns);
    if (!byName?.delete(obj.metadata?.name ?? '')) return;
    if (byName.size === 0) this.objects.delete(ns);
    this.emit('delete', obj);
  }

  private emit(verb: Verb, x: unknown): void {
    for (const cb of this.handlers[verb].slice()) (cb as (y: unknown) => void)(x);
  }
}

function isGone(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: number } | null;
  return !!e && (e.statusCode === 410 || e.code === 410);
}
