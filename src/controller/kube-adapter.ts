// The controller's reads and writes against a real API server: reads from the
// informer caches, writes through the fenced custom-resource client.
//
// Read-your-writes: an informer delivers our own write a few milliseconds
// after the API server answered it. A pass that runs in between (the agent's
// report often arrives first) would decide from the previous status; the
// fence would refuse its write (correct, but a wasted request and a retry on
// the hand-off path). So the object each write returns is kept and preferred
// over the cached one while it is newer. "Newer" compares resourceVersions as
// numbers, which Kubernetes calls opaque; it holds for every etcd-backed API
// server, and when it does not parse we simply trust the cache (the fence
// still guarantees correctness, only the optimisation is lost).
import type { KubernetesObject, V1Node } from '@kubernetes/client-node';
import type { CertificateRotation, CertificateRotationStatus } from '../api/certificaterotation.js';
import { LABELS } from '../api/constants.js';
import { labelValue } from '../api/names.js';
import type { NodeRotation, SealedBundle } from '../api/noderotation.js';
import { isAlreadyExists, type ClusterCustomResource, type CustomObject } from '../kube/client.js';
import { stripManagedFields, type Informer } from '../kube/informer.js';
import type { ClusterReader, ControllerWriter } from './deps.js';

function rvNumber(obj: KubernetesObject | undefined): bigint | undefined {
  const rv = obj?.metadata?.resourceVersion;
  if (!rv || !/^\d+$/.test(rv)) return undefined;
  return BigInt(rv);
}

/** How long a written object may stand in for one the cache does not show (yet). */
const UNSEEN_GRACE_MS = 5_000;

export class RecentWrites<T extends KubernetesObject> {
  private readonly latest = new Map<string, { obj: T; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  remember(obj: T): void {
    // Kept like the informer keeps objects: without managedFields.
    this.latest.set(obj.metadata!.name!, { obj: stripManagedFields(obj), at: this.now() });
  }

  forget(name: string): void {
    this.latest.delete(name);
  }

  /** The newer of the cached object and our last write of it. */
  pick(name: string, cached: T | undefined): T | undefined {
    const mine = this.latest.get(name);
    if (!mine) return cached;
    if (!cached) {
      if (this.now() - mine.at < UNSEEN_GRACE_MS) return mine.obj;
      this.latest.delete(name);
      return undefined;
    }
    const a = rvNumber(mine.obj);
    const b = rvNumber(cached);
    if (a !== undefined && b !== undefined && a > b) return mine.obj;
    this.latest.delete(name); // the cache caught up (or cannot be compared): trust it from now on
    return cached;
  }

  /** Written objects the cache does not have yet. */
  unseen(inCache: (name: string) => boolean): T[] {
    const out: T[] = [];
    for (const [name, { obj, at }] of this.latest) {
      if (inCache(name)) this.latest.delete(name);
      else if (this.now() - at < UNSEEN_GRACE_MS) out.push(obj);
      else this.latest.delete(name);
    }
    return out;
  }
}

export interface KubeReaderSources {
  rotations: Informer<CertificateRotation & CustomObject>;
  nodeRotations: Informer<NodeRotation & CustomObject>;
  nodes: Informer<V1Node>;
}

export class KubeReader implements ClusterReader {
  readonly rotationWrites = new RecentWrites<CertificateRotation>();
  readonly createdNodeRotations = new RecentWrites<NodeRotation>();

  constructor(private readonly src: KubeReaderSources) {}

  rotation(name: string): CertificateRotation | undefined {
    return this.rotationWrites.pick(name, this.src.rotations.get(name));
  }

  rotations(): readonly CertificateRotation[] {
    return this.src.rotations.list().map((r) => this.rotationWrites.pick(r.metadata!.name!, r)!);
  }

  nodeRotationsOf(rotation: string): readonly NodeRotation[] {
    const label = labelValue(rotation);
    const mine = (nr: NodeRotation): boolean => nr.metadata.labels?.[LABELS.rotation] === label && nr.spec.rotation === rotation;
    const cached = this.src.nodeRotations.list().filter(mine);
    const created = this.createdNodeRotations.unseen((name) => this.src.nodeRotations.get(name) !== undefined).filter(mine);
    return [...cached, ...created];
  }

  nodeRotation(name: string): NodeRotation | undefined {
    return this.createdNodeRotations.pick(name, this.src.nodeRotations.get(name));
  }

  /** True when the cache holds the NodeRotation or we created it and the cache has not caught up. */
  nodeRotationExists(name: string): boolean {
    return this.src.nodeRotations.get(name) !== undefined || this.createdNodeRotations.pick(name, undefined) !== undefined;
  }

  nodes(): readonly V1Node[] {
    return this.src.nodes.list();
  }

  nodeExists(name: string): boolean {
    return this.src.nodes.get(name) !== undefined;
  }
}

export type WriteCounter = (verb: 'update' | 'patch' | 'create' | 'delete', resource: string) => void;

export class KubeWriter implements ControllerWriter {
  constructor(
    private readonly rotations: ClusterCustomResource<CertificateRotation & CustomObject>,
    private readonly nodeRotations: ClusterCustomResource<NodeRotation & CustomObject>,
    private readonly reader: KubeReader,
    private readonly count: WriteCounter = () => {},
  ) {}

  async replaceStatus(rotation: CertificateRotation, status: CertificateRotationStatus): Promise<CertificateRotation> {
    this.count('update', 'certificaterotations/status');
    const stored = await this.rotations.replaceStatus(rotation, status);
    this.reader.rotationWrites.remember(stored);
    return stored;
  }

  async setFinalizers(rotation: CertificateRotation, finalizers: string[]): Promise<CertificateRotation> {
    this.count('patch', 'certificaterotations');
    // Merge patch of the whole list, fenced: a concurrent change of the list is a 409, never a lost finalizer.
    const stored = await this.rotations.mergePatch(rotation.metadata.name!, {
      metadata: { finalizers, resourceVersion: rotation.metadata.resourceVersion },
    });
    this.reader.rotationWrites.remember(stored);
    return stored;
  }

  async createNodeRotation(nr: NodeRotation): Promise<'created' | 'exists'> {
    this.count('create', 'noderotations');
    try {
      const stored = await this.nodeRotations.create(nr);
      this.reader.createdNodeRotations.remember(stored);
      return 'created';
    } catch (err) {
      if (isAlreadyExists(err)) return 'exists';
      throw err;
    }
  }

  async deleteNodeRotation(name: string): Promise<void> {
    this.count('delete', 'noderotations');
    this.reader.createdNodeRotations.forget(name);
    await this.nodeRotations.delete(name);
  }

  async setSealedBundle(name: string, sealedBundle: SealedBundle | null): Promise<void> {
    this.count('patch', 'noderotations');
    // Not fenced: it is sealed to the key the agent published; a newer key is sealed to on the next pass.
    await this.nodeRotations.mergePatch(name, { sealedBundle });
  }

  async getRotation(name: string): Promise<CertificateRotation | undefined> {
    const fresh = await this.rotations.tryGet(name);
    if (fresh) this.reader.rotationWrites.remember(fresh);
    return fresh;
  }
}
