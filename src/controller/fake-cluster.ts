// An in-memory stand-in for the API server, for unit tests ONLY (the e2e
// tests use a real control plane). It keeps the semantics the controller's
// safety rests on: resourceVersion fencing (409 → ConflictError), generation
// bumps on spec changes only, finalizers holding a deleted object, and
// create-by-name being AlreadyExists the second time. It also counts writes
// and can fail the Nth write, to simulate a crash between any two writes.
import type { V1Node } from '@kubernetes/client-node';
import { API_VERSION, CERTIFICATE_ROTATION, LABELS } from '../api/constants.js';
import type { CertificateRotation, CertificateRotationSpecInput, CertificateRotationStatus } from '../api/certificaterotation.js';
import type { NodeRotation, NodeRotationStatus, SealedBundle } from '../api/noderotation.js';
import { labelValue } from '../api/names.js';
import { ConflictError } from '../kube/client.js';
import type { ClusterReader, ControllerDeps, ControllerWriter, EventSink } from './deps.js';
import { RunIndex } from './run-index.js';

const clone = <T>(x: T): T => structuredClone(x);

export class CrashError extends Error {
  override readonly name = 'CrashError';
}

export interface RecordedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export class FakeCluster implements ClusterReader, ControllerWriter, EventSink {
  private rv = 100;
  readonly rotationsByName = new Map<string, CertificateRotation>();
  readonly nodeRotationsByName = new Map<string, NodeRotation>();
  nodeList: V1Node[] = [];
  readonly events: RecordedEvent[] = [];
  /** Every write the controller made, in order: `verb resource/name`. */
  readonly writes: string[] = [];
  /** Every status the controller wrote, for invariant checks over the whole history. */
  readonly statusHistory: CertificateRotationStatus[] = [];
  readonly created: string[] = [];
  /** Throws CrashError instead of performing write number `crashAtWrite` (1-based), once. */
  crashAtWrite: number | undefined;
  clock = new Date('2026-09-01T10:00:00Z');

  /** One per fake, like the controller process's: every pass checks it against a full rebuild. */
  readonly runs: RunIndex;

  /** `statusHoldMs`: let passes hold their status writes, as the controller process does (status-hold.ts); off by default. */
  constructor(nodes: V1Node[] = [], opts: { statusHoldMs?: number } = {}) {
    this.nodeList = nodes;
    this.runs = new RunIndex({ verify: true, statusHoldMs: opts.statusHoldMs });
  }

  private nextRV(): string {
    return String(++this.rv);
  }

  private countWrite(what: string): void {
    if (this.crashAtWrite !== undefined && this.writes.length + 1 === this.crashAtWrite) {
      this.crashAtWrite = undefined;
      throw new CrashError(`simulated crash before write #${this.writes.length + 1} (${what})`);
    }
    this.writes.push(what);
  }

  // --- what a user does -----------------------------------------------------

  apply(name: string, spec: CertificateRotationSpecInput = {}, createdAt = this.clock): CertificateRotation {
    const obj: CertificateRotation = {
      apiVersion: API_VERSION,
      kind: CERTIFICATE_ROTATION.kind,
      metadata: { name, uid: `uid-${name}`, generation: 1, resourceVersion: this.nextRV(), creationTimestamp: createdAt },
      spec: withDefaults(spec),
      status: { observedGeneration: -1 },
    };
    this.rotationsByName.set(name, obj);
    return clone(obj);
  }

  updateSpec(name: string, change: (spec: CertificateRotation['spec']) => void): void {
    const obj = this.rotationsByName.get(name)!;
    change(obj.spec);
    obj.metadata.generation = (obj.metadata.generation ?? 1) + 1;
    obj.metadata.resourceVersion = this.nextRV();
  }

  deleteRotation(name: string): void {
    const obj = this.rotationsByName.get(name)!;
    if ((obj.metadata.finalizers ?? []).length === 0) {
      this.rotationsByName.delete(name);
      return;
    }
    obj.metadata.deletionTimestamp = this.clock;
    obj.metadata.resourceVersion = this.nextRV();
  }

  // --- what an agent does ---------------------------------------------------

  report(nodeRotation: string, status: Partial<NodeRotationStatus>): void {
    const nr = this.nodeRotationsByName.get(nodeRotation);
    if (!nr) throw new Error(`no NodeRotation ${nodeRotation}`);
    nr.status = { phase: 'Pending', ...nr.status, runID: nr.spec.runID, ...status };
    nr.metadata.resourceVersion = this.nextRV();
  }

  // --- ClusterReader --------------------------------------------------------

  rotation(name: string): CertificateRotation | undefined {
    const r = this.rotationsByName.get(name);
    return r ? clone(r) : undefined;
  }

  rotations(): readonly CertificateRotation[] {
    return [...this.rotationsByName.values()].map(clone);
  }

  nodeRotationsOf(rotation: string): readonly NodeRotation[] {
    return [...this.nodeRotationsByName.values()].filter((nr) => nr.metadata.labels?.[LABELS.rotation] === labelValue(rotation)).map(clone);
  }

  nodeRotation(name: string): NodeRotation | undefined {
    const nr = this.nodeRotationsByName.get(name);
    return nr ? clone(nr) : undefined;
  }

  nodes(): readonly V1Node[] {
    return this.nodeList;
  }

  nodeExists(name: string): boolean {
    if (this.nodeNames?.list !== this.nodeList) this.nodeNames = { list: this.nodeList, names: new Set(this.nodeList.map((n) => n.metadata?.name ?? '')) };
    return this.nodeNames.names.has(name);
  }

  private nodeNames: { list: V1Node[]; names: Set<string> } | undefined;

  // --- ControllerWriter -----------------------------------------------------

  private fenced(rotation: CertificateRotation, what: string): CertificateRotation {
    const name = rotation.metadata.name!;
    const stored = this.rotationsByName.get(name);
    if (!stored) throw Object.assign(new Error(`${name} not found`), { code: 404 });
    this.countWrite(what);
    if (stored.metadata.resourceVersion !== rotation.metadata.resourceVersion) {
      throw new ConflictError('certificaterotations', name, rotation.metadata.resourceVersion);
    }
    return stored;
  }

  async replaceStatus(rotation: CertificateRotation, status: CertificateRotationStatus): Promise<CertificateRotation> {
    const stored = this.fenced(rotation, `status certificaterotations/${rotation.metadata.name}`);
    stored.status = clone(status);
    stored.metadata.resourceVersion = this.nextRV();
    this.statusHistory.push(clone(status));
    return clone(stored);
  }

  async setFinalizers(rotation: CertificateRotation, finalizers: string[]): Promise<CertificateRotation> {
    const stored = this.fenced(rotation, `finalizers certificaterotations/${rotation.metadata.name}`);
    stored.metadata.finalizers = [...finalizers];
    stored.metadata.resourceVersion = this.nextRV();
    if (stored.metadata.deletionTimestamp && finalizers.length === 0) this.rotationsByName.delete(stored.metadata.name!);
    return clone(stored);
  }

  async createNodeRotation(nr: NodeRotation): Promise<'created' | 'exists'> {
    const name = nr.metadata.name!;
    this.countWrite(`create noderotations/${name}`);
    if (this.nodeRotationsByName.has(name)) return 'exists';
    this.nodeRotationsByName.set(name, {
      ...clone(nr),
      metadata: { ...clone(nr.metadata), resourceVersion: this.nextRV(), creationTimestamp: this.clock },
      status: { phase: 'Pending' },
    });
    this.created.push(name);
    return 'created';
  }

  async deleteNodeRotation(name: string): Promise<void> {
    this.countWrite(`delete noderotations/${name}`);
    this.nodeRotationsByName.delete(name);
  }

  async setSealedBundle(name: string, sealed: SealedBundle | null): Promise<void> {
    this.countWrite(`patch noderotations/${name}`);
    const nr = this.nodeRotationsByName.get(name);
    if (!nr) throw new Error(`noderotations/${name} not found`);
    if (sealed) nr.sealedBundle = clone(sealed);
    else delete nr.sealedBundle;
    nr.metadata.resourceVersion = this.nextRV();
  }

  async getRotation(name: string): Promise<CertificateRotation | undefined> {
    return this.rotation(name);
  }

  // --- EventSink ------------------------------------------------------------

  normal(_obj: CertificateRotation, reason: string, message: string): void {
    this.events.push({ type: 'Normal', reason, message });
  }

  warning(_obj: CertificateRotation, reason: string, message: string): void {
    this.events.push({ type: 'Warning', reason, message });
  }

  // --- wiring ---------------------------------------------------------------

  deps(): ControllerDeps {
    const quiet = () => {};
    return {
      read: this,
      write: this,
      events: this,
      now: () => this.clock,
      log: { debug: quiet, info: quiet, warn: quiet, error: quiet },
      runs: this.runs,
    };
  }

  advance(ms: number): void {
    this.clock = new Date(this.clock.getTime() + ms);
  }
}

function withDefaults(spec: CertificateRotationSpecInput): CertificateRotation['spec'] {
  return {
    ...spec,
    scope: spec.scope ?? 'All',
    mode: spec.mode ?? 'Apply',
    paused: spec.paused ?? false,
    strategy: {
      maxUnavailable: spec.strategy?.maxUnavailable ?? 1,
      nodeTimeout: spec.strategy?.nodeTimeout ?? '10m',
      onFailure: spec.strategy?.onFailure ?? 'Rollback',
      ...(spec.strategy?.nodeSelector ? { nodeSelector: spec.strategy.nodeSelector } : {}),
    },
  } as CertificateRotation['spec'];
}
