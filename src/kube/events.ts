// Kubernetes Events for our objects (what `kubectl describe` and
// `kubectl get events` show), written as core/v1 Events like client-go's
// record.EventRecorder.
//
// Why aggregate: a reconcile that fails in a loop would otherwise create an
// Event per attempt, and Events are real etcd objects (1 h TTL). client-go's
// EventCorrelator folds identical events (same object, type, reason,
// message) into one object whose `count` grows. We do the same, and also
// batch the count updates locally so a hot loop causes at most one PATCH per
// event key per `minUpdateIntervalMs`.
//
// Recording never throws and never blocks the reconcile: writes happen in the
// background; failures are logged and dropped (an Event is best effort).
import type { CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import { PatchStrategy } from '@kubernetes/client-node/dist/patch.js';
import { hostname } from 'node:os';
import { isNotFound, MERGE_PATCH } from './client.js';
import type { KubeAccess } from './kubeconfig.js';
import { namespacedPath, transportFor } from './transport.js';

export type EventType = 'Normal' | 'Warning';

/** The object an Event is about. Cluster-scoped objects have no namespace. */
export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export type EventClient = Pick<CoreV1Api, 'createNamespacedEvent' | 'patchNamespacedEvent'>;

/**
 * The Event writes of a kubeconfig: through the lean transport (a component
 * that records Events all the time need not load client-node for them), or
 * client-node's CoreV1Api for a kubeconfig the transport does not speak.
 */
export function eventClientFor(kc: KubeAccess): EventClient {
  const transport = transportFor(kc);
  if (!transport) return kc.api((m) => m.CoreV1Api);
  const client: {
    createNamespacedEvent(p: { namespace: string; body: CoreV1Event }): Promise<CoreV1Event>;
    patchNamespacedEvent(p: { name: string; namespace: string; body: object }): Promise<CoreV1Event>;
  } = {
    createNamespacedEvent: ({ namespace, body }) => transport.request<CoreV1Event>('POST', namespacedPath('/api/v1', 'events', namespace), { body }),
    // Only merge patches are sent (EventRecorder.send).
    patchNamespacedEvent: ({ name, namespace, body }) =>
      transport.request<CoreV1Event>('PATCH', namespacedPath('/api/v1', 'events', namespace, name), { body, contentType: PatchStrategy.MergePatch }),
  };
  return client as EventClient;
}

export interface EventRecorderLogger {
  warn(obj: object, msg: string): void;
}

export interface EventRecorderOptions {
  kc?: KubeAccess;
  client?: EventClient;
  /** `source.component` / `reportingComponent`, e.g. `certrotator-controller`. */
  component: string;
  /** `reportingInstance`; default the host name (the pod name in a Deployment). */
  instance?: string;
  /**
   * Namespace for Events of cluster-scoped objects. Kubernetes convention
   * (kubectl, client-go) is `default`: an Event must live in some namespace.
   */
  clusterScopedNamespace?: string;
  /** Identical events within this window update one Event. Default 10 min (client-go). */
  aggregationWindowMs?: number;
  /** At most one API write per event key per this interval. Default 5 s. */
  minUpdateIntervalMs?: number;
  /** How many distinct event keys to remember. Default 4096 (client-go's cache size). */
  maxKeys?: number;
  logger?: EventRecorderLogger;
  now?: () => number;
}

interface Aggregate {
  namespace: string;
  /** Name of the Event object once created. */
  eventName?: string;
  /** Count already written to the API server. */
  writtenCount: number;
  /** Count including occurrences not written yet. */
  count: number;
  firstTimestamp: number;
  lastTimestamp: number;
  lastWriteAt: number;
  flushTimer?: ReturnType<typeof setTimeout>;
  writing?: Promise<void>;
  template: CoreV1Event;
}

/** Kubernetes limits an Event message to 1 KiB in events.k8s.io; keep core Events the same size. */
const MAX_MESSAGE = 1024;

export class EventRecorder {
  private readonly client: EventClient;
  private readonly opts: EventRecorderOptions;
  private readonly instance: string;
  private readonly window: number;
  private readonly minInterval: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  /** Insertion-ordered: the first entries are the least recently used. */
  private readonly aggregates = new Map<string, Aggregate>();
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(opts: EventRecorderOptions) {
    if (!opts.client && !opts.kc) throw new Error('EventRecorder needs kc or client');
    this.opts = opts;
    this.client = opts.client ?? eventClientFor(opts.kc!);
    this.instance = opts.instance ?? hostname();
    this.window = opts.aggregationWindowMs ?? 10 * 60 * 1000;
    this.minInterval = opts.minUpdateIntervalMs ?? 5000;
    this.maxKeys = opts.maxKeys ?? 4096;
    this.now = opts.now ?? Date.now;
  }

  normal(obj: InvolvedObject, reason: string, message: string): void {
    this.event(obj, 'Normal', reason, message);
  }

  warning(obj: InvolvedObject, reason: string, message: string): void {
    this.event(obj, 'Warning', reason, message);
  }

  /** Records an Event about `obj`. `reason` is UpperCamelCase (e.g. `NodeRotated`). */
  event(obj: InvolvedObject, type: EventType, reason: string, message: string): void {
    if (this.closed) return;
    const name = obj.metadata?.name;
    if (!name) return;
    const msg = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
    const namespace = obj.metadata?.namespace || (this.opts.clusterScopedNamespace ?? 'default');
    // uid in the key: a re-created object with the same name gets its own Events.
    const key = [obj.apiVersion, obj.kind, obj.metadata?.namespace ?? '', name, obj.metadata?.uid ?? '', type, reason, msg].join('\u0000');
    const now = this.now();
    let agg = this.aggregates.get(key);
    if (agg && now - agg.lastTimestamp > this.window) {
      // Outside the window: a new occurrence series, a new Event object.
      clearTimeout(agg.flushTimer);
      this.aggregates.delete(key);
      agg = undefined;
    }
    if (!agg) {
      agg = {
        namespace,
        writtenCount: 0,
        count: 0,
        firstTimestamp: now,
        lastTimestamp: now,
        lastWriteAt: 0,
        template: this.template(obj, namespace, type, reason, msg),
      };
      this.remember(key, agg);
    } else {
      // refresh LRU position
      this.aggregates.delete(key);
      this.aggregates.set(key, agg);
    }
    agg.count++;
    agg.lastTimestamp = now;
    this.schedule(agg);
  }

  /** Writes every pending count now and waits for all writes (tests, shutdown). */
  async flush(): Promise<void> {
    for (const agg of this.aggregates.values()) {
      if (agg.flushTimer) {
        clearTimeout(agg.flushTimer);
        agg.flushTimer = undefined;
        if (!agg.writing) this.write(agg);
      }
    }
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    // A write that finished may have found more occurrences to write.
    if ([...this.aggregates.values()].some((a) => a.flushTimer)) await this.flush();
  }

  /** Flushes and refuses further events. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private remember(key: string, agg: Aggregate): void {
    this.aggregates.set(key, agg);
    while (this.aggregates.size > this.maxKeys) {
      const oldest = this.aggregates.keys().next().value as string;
      const evicted = this.aggregates.get(oldest)!;
      // Keep its pending count: write it out, then forget the key.
      if (evicted.flushTimer) {
        clearTimeout(evicted.flushTimer);
        evicted.flushTimer = undefined;
        if (!evicted.writing) this.write(evicted);
      }
      this.aggregates.delete(oldest);
    }
  }

  /** Writes now if the per-key interval allows, else arms one timer; a running write re-schedules when it ends. */
  private schedule(agg: Aggregate): void {
    if (agg.flushTimer || agg.writing) return;
    const since = this.now() - agg.lastWriteAt;
    if (agg.lastWriteAt === 0 || since >= this.minInterval) {
      this.write(agg);
      return;
    }
    agg.flushTimer = setTimeout(() => {
      agg.flushTimer = undefined;
      this.write(agg);
    }, this.minInterval - since);
  }

  /** One API write carrying the count so far. Callers ensure no write of `agg` is running. */
  private write(agg: Aggregate): void {
    if (agg.writing) return;
    agg.lastWriteAt = this.now();
    const count = agg.count;
    const p = this.send(agg, count)
      .then(() => {
        agg.writtenCount = count;
      })
      .catch((err: unknown) => {
        // Best effort: an Event that cannot be written is dropped, never retried in a loop.
        this.opts.logger?.warn({ err: err instanceof Error ? err.message : String(err), reason: agg.template.reason }, 'failed to record event');
      })
      .finally(() => {
        agg.writing = undefined;
        this.inFlight.delete(p);
        // Occurrences recorded while this write ran go out in the next one.
        if (agg.count > count && !this.closed) this.schedule(agg);
      });
    agg.writing = p;
    this.inFlight.add(p);
  }

  private async send(agg: Aggregate, count: number): Promise<void> {
    const last = new Date(agg.lastTimestamp);
    if (agg.eventName) {
      try {
        await this.client.patchNamespacedEvent(
          { name: agg.eventName, namespace: agg.namespace, body: { count, lastTimestamp: last } },
          MERGE_PATCH,
        );
        return;
      } catch (err) {
        // The Event expired (TTL) or was deleted: start a new one.
        if (!isNotFound(err)) throw err;
        agg.eventName = undefined;
      }
    }
    const name = `${agg.template.involvedObject.name}.${(BigInt(this.now()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6))).toString(16)}`;
    await this.client.createNamespacedEvent({
      namespace: agg.namespace,
      body: {
        ...agg.template,
        metadata: { name, namespace: agg.namespace },
        count,
        firstTimestamp: new Date(agg.firstTimestamp),
        lastTimestamp: last,
        // No eventTime: that marks a new-style event, which the API server
        // validates differently (series instead of count).
      },
    });
    agg.eventName = name;
  }

  private template(obj: InvolvedObject, namespace: string, type: EventType, reason: string, message: string): CoreV1Event {
    return {
      metadata: {},
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata?.name,
        namespace: obj.metadata?.namespace,
        uid: obj.metadata?.uid,
        resourceVersion: obj.metadata?.resourceVersion,
      },
      type,
      reason,
      message,
      source: { component: this.opts.component, host: this.instance },
      reportingComponent: this.opts.component,
      reportingInstance: this.instance,
      action: reason,
    } as CoreV1Event;
  }
}
