// Leader election on a coordination.k8s.io/v1 Lease, following client-go's
// tools/leaderelection (client-node has none).
//
// Safety rests on three rules copied from client-go:
// 1. Every acquire/renew is a create or a replace fenced by the Lease's
//    resourceVersion: of two candidates writing at once, the API server
//    accepts exactly one; the other gets 409 and has lost.
// 2. Expiry of someone else's lease is measured on OUR clock from the moment
//    we OBSERVED its record change, never from the renewTime it wrote, so
//    clock skew between replicas cannot make a standby take over early.
// 3. The leader gives up when it has not renewed for renewDeadline (10 s),
//    measured from when its last successful renew was SENT; that is shorter
//    than leaseDuration (15 s), so the old leader has stopped before any
//    standby can consider the lease expired. The caller must then stop
//    all work (client-go's convention: exit the process).
//
// Takeover after the leader dies without releasing: at most leaseDuration
// after the standby last observed a renewal, plus one request. The standby
// schedules its next attempt for the moment the lease expires (instead of
// only every retryPeriod), which keeps the worst case at ~17 s, under the
// 20 s the design requires. A graceful stop releases the lease (empty
// holder), so the standby takes over at its next attempt (≤ retryPeriod).
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
// Modules of the classes alone: the package's index would load all of client-node (kubeconfig.ts).
import { ApiException } from '@kubernetes/client-node/dist/gen/apis/exception.js';
import { V1MicroTime } from '@kubernetes/client-node/dist/types.js';
import { hostname } from 'node:os';
import { isNotFound, statusCode } from './client.js';
import type { KubeAccess } from './kubeconfig.js';
import { namespacedPath, transportFor } from './transport.js';

export interface LeaderElectionLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

const silentLogger: LeaderElectionLogger = { info() {}, warn() {}, debug() {} };

/** The Lease operations we need; CoordinationV1Api satisfies it. */
export type LeaseClient = Pick<CoordinationV1Api, 'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'>;

/**
 * The Lease requests of a kubeconfig: through the lean transport (the elector
 * renews every 2 s for the life of the process; it need not load client-node
 * for that), or client-node's CoordinationV1Api for a kubeconfig the
 * transport does not speak. Times go out as MicroTime (V1MicroTime's JSON);
 * through the transport they come back as strings, which is all `observe`
 * compares.
 */
export function leaseClientFor(kc: KubeAccess): LeaseClient {
  const transport = transportFor(kc);
  if (!transport) return kc.api((m) => m.CoordinationV1Api);
  const leases = (namespace: string, name?: string) => namespacedPath('/apis/coordination.k8s.io/v1', 'leases', namespace, name);
  const client: {
    readNamespacedLease(p: { name: string; namespace: string }): Promise<V1Lease>;
    createNamespacedLease(p: { namespace: string; body: V1Lease }): Promise<V1Lease>;
    replaceNamespacedLease(p: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease>;
  } = {
    readNamespacedLease: ({ name, namespace }) => transport.request<V1Lease>('GET', leases(namespace, name)),
    createNamespacedLease: ({ namespace, body }) => transport.request<V1Lease>('POST', leases(namespace), { body }),
    replaceNamespacedLease: ({ name, namespace, body }) => transport.request<V1Lease>('PUT', leases(namespace, name), { body }),
  };
  return client as LeaseClient;
}

export interface LeaderElectorOptions {
  kc?: KubeAccess;
  /** Injected client (tests); otherwise built from `kc`. */
  client?: LeaseClient;
  namespace: string;
  name: string;
  /** Unique per replica; default `<hostname>_<random>` like client-go callers use. */
  identity?: string;
  /** How long a lease is valid without renewal. Default 15 s (controller-runtime). */
  leaseDurationMs?: number;
  /** The leader gives up if it cannot renew for this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** Interval between attempts. Default 2 s. */
  retryPeriodMs?: number;
  /** Release the lease on `stop()` so a standby takes over at once. Default true. */
  releaseOnStop?: boolean;
  /** Called once when this replica becomes leader; `signal` aborts when leadership ends. */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called once when leadership ends (lost, or stopped). Not called if never leading. */
  onStoppedLeading?: (reason: 'lost' | 'stopped') => void;
  /** Called whenever the observed leader changes (including to ourselves). */
  onNewLeader?: (identity: string) => void;
  logger?: LeaderElectionLogger;
}

/** The Lease fields we compare to see whether the record changed. */
interface ObservedRecord {
  holder: string;
  renewTime: string;
  leaseDurationSeconds: number;
  transitions: number;
}

export class LeaderElector {
  readonly identity: string;
  private readonly opts: LeaderElectorOptions;
  private readonly client: LeaseClient;
  private readonly log: LeaderElectionLogger;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;

  private observed: ObservedRecord | undefined;
  /** Local monotonic time (performance.now) when `observed` last changed. */
  private observedAt = 0;
  private lease: V1Lease | undefined;
  private leading = false;
  private stopped = false;
  private leadership: AbortController | undefined;
  private lastReportedLeader = '';
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(opts: LeaderElectorOptions) {
    this.opts = opts;
    this.identity = opts.identity ?? `${hostname()}_${Math.random().toString(36).slice(2, 10)}`;
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    // client-go validates the same inequalities: otherwise a leader could
    // still act after a standby considers its lease expired.
    if (!(this.leaseDurationMs > this.renewDeadlineMs)) throw new Error('leaseDuration must be greater than renewDeadline');
    if (!(this.renewDeadlineMs > this.retryPeriodMs * 1.2)) throw new Error('renewDeadline must be greater than retryPeriod*1.2');
    if (!opts.client && !opts.kc) throw new Error('LeaderElector needs kc or client');
    this.client = opts.client ?? leaseClientFor(opts.kc!);
    this.log = opts.logger ?? silentLogger;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The identity of the leader as last observed ('' if none). */
  leader(): string {
    return this.observed?.holder ?? '';
  }

  /**
   * Runs the election until `stop()` or until leadership is lost. Resolves
   * then; `onStoppedLeading('lost')` tells the caller to exit.
   */
  run(): Promise<void> {
    this.loop ??= this.runLoop();
    return this.loop;
  }

  /** Stops campaigning; if leading, releases the lease (unless disabled) and calls onStoppedLeading('stopped'). */
  async stop(): Promise<void> {
    if (this.stopped) return this.loop;
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async runLoop(): Promise<void> {
    // Acquire: retry until we hold the lease.
    while (!this.stopped) {
      const attemptStarted = performance.now();
      const acquired = await this.tryAcquireOrRenew(this.retryPeriodMs);
      if (acquired && this.stopped) {
        // stop() raced with a successful acquire: hand the lease straight back.
        await this.release();
        return;
      }
      if (this.stopped) break;
      if (acquired) {
        this.becomeLeader(attemptStarted);
        break;
      }
      const delay = this.nextAcquireDelay();
      this.log.debug({ identity: this.identity, retryInMs: Math.round(delay) }, 'lease held by another candidate; retrying');
      await this.sleep(delay);
    }
    if (this.stopped) {
      await this.finishStopped();
      return;
    }
    // Renew: every retryPeriod; give up once renewDeadline has passed since
    // the last successful renew was sent.
    let lastRenewSent = this.renewedAt;
    while (!this.stopped) {
      await this.sleep(this.retryPeriodMs);
      if (this.stopped) break;
      const remaining = lastRenewSent + this.renewDeadlineMs - performance.now();
      if (remaining <= 0) break;
      const sent = performance.now();
      // The request may hang: it must not outlive the renew deadline.
      const renewed = await this.tryAcquireOrRenew(Math.min(remaining, this.renewDeadlineMs));
      if (renewed) lastRenewSent = sent;
      else if (performance.now() - lastRenewSent >= this.renewDeadlineMs) break;
    }
    if (this.stopped) {
      await this.finishStopped();
      return;
    }
    this.log.warn({ identity: this.identity, lease: this.leaseName() }, 'failed to renew the lease within the renew deadline; leadership lost');
    this.endLeadership('lost');
  }

  private renewedAt = 0;

  private becomeLeader(sentAt: number): void {
    this.renewedAt = sentAt;
    this.leading = true;
    this.leadership = new AbortController();
    this.log.info({ identity: this.identity, lease: this.leaseName() }, 'became leader');
    const signal = this.leadership.signal;
    // Not awaited: the renew loop must run while the caller's work runs.
    void Promise.resolve()
      .then(() => this.opts.onStartedLeading(signal))
      .catch((err: unknown) => this.log.warn({ err: String(err) }, 'onStartedLeading failed'));
  }

  private async finishStopped(): Promise<void> {
    if (!this.leading) return;
    // Stop the work first, then release: nobody must act while a successor leads.
    this.leadership?.abort();
    if (this.opts.releaseOnStop ?? true) await this.release();
    this.endLeadership('stopped');
  }

  private endLeadership(reason: 'lost' | 'stopped'): void {
    if (!this.leading) return;
    this.leading = false;
    this.leadership?.abort();
    this.opts.onStoppedLeading?.(reason);
  }

  /** Next acquire attempt: the retry period, or sooner if the current lease expires sooner. */
  private nextAcquireDelay(): number {
    if (!this.observed || !this.observed.holder) return this.retryPeriodMs;
    const expiresIn = this.observedAt + this.observed.leaseDurationSeconds * 1000 - performance.now();
    // +50 ms so the lease is strictly expired on our clock when we try.
    return Math.max(50, Math.min(this.retryPeriodMs, expiresIn + 50));
  }

  private leaseName(): string {
    return `${this.opts.namespace}/${this.opts.name}`;
  }

  /** One attempt (client-go tryAcquireOrRenew). True if we hold the lease afterwards. */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    try {
      return await withTimeout(this.attempt(), timeoutMs);
    } catch (err) {
      if (statusCode(err) === 409) {
        // Someone else wrote the Lease between our read and our write: they won this round.
        this.log.debug({ identity: this.identity }, 'lease write conflicted; another candidate won');
      } else {
        this.log.warn({ identity: this.identity, err: errText(err) }, 'lease attempt failed');
      }
      return false;
    }
  }

  private async attempt(): Promise<boolean> {
    const { namespace, name } = this.opts;
    const now = new V1MicroTime(Date.now());
    const durationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    let current: V1Lease;
    try {
      current = await this.client.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const created = await this.client.createNamespacedLease({
        namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: this.identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        },
      });
      this.observe(created);
      return true;
    }
    this.observe(current);
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const mine = holder === this.identity;
    if (holder && !mine && !this.observedExpired()) return false;
    // Free, expired, or ours: write ourselves in, fenced by the version we read.
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...current.metadata, name, namespace, resourceVersion: current.metadata?.resourceVersion },
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
        acquireTime: mine ? (spec.acquireTime ?? now) : now,
        leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    const written = await this.client.replaceNamespacedLease({ name, namespace, body });
    this.observe(written);
    return true;
  }

  private observedExpired(): boolean {
    if (!this.observed) return true;
    return this.observedAt + this.observed.leaseDurationSeconds * 1000 < performance.now();
  }

  private observe(lease: V1Lease): void {
    this.lease = lease;
    const spec = lease.spec ?? {};
    const record: ObservedRecord = {
      holder: spec.holderIdentity ?? '',
      renewTime: timeText(spec.renewTime),
      leaseDurationSeconds: spec.leaseDurationSeconds ?? Math.ceil(this.leaseDurationMs / 1000),
      transitions: spec.leaseTransitions ?? 0,
    };
    const o = this.observed;
    if (!o || o.holder !== record.holder || o.renewTime !== record.renewTime || o.transitions !== record.transitions || o.leaseDurationSeconds !== record.leaseDurationSeconds) {
      this.observed = record;
      this.observedAt = performance.now();
    }
    if (record.holder !== this.lastReportedLeader) {
      this.lastReportedLeader = record.holder;
      if (record.holder) {
        this.log.info({ identity: this.identity, leader: record.holder }, 'new leader observed');
        this.opts.onNewLeader?.(record.holder);
      }
    }
  }

  /** client-go ReleaseOnCancel: empty holder, 1 s duration, so the next candidate need not wait. */
  private async release(): Promise<void> {
    const lease = this.lease;
    if (!lease || lease.spec?.holderIdentity !== this.identity) return;
    const now = new V1MicroTime(Date.now());
    try {
      await withTimeout(
        this.client.replaceNamespacedLease({
          name: this.opts.name,
          namespace: this.opts.namespace,
          body: {
            ...lease,
            spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: now, acquireTime: now },
          },
        }),
        this.renewDeadlineMs,
      );
      this.log.info({ identity: this.identity, lease: this.leaseName() }, 'released the lease');
    } catch (err) {
      // A conflict means someone else already holds it: nothing to release.
      this.log.warn({ identity: this.identity, err: errText(err) }, 'failed to release the lease');
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`lease request timed out after ${Math.round(ms)} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function timeText(t: unknown): string {
  if (t instanceof Date) return t.toISOString();
  return t === undefined || t === null ? '' : String(t);
}

function errText(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}`;
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return cause?.code ? `${err.message} (${cause.code})` : err.message;
  }
  return String(err);
}
