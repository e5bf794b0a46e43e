// API access shared by the controller and the agent: one kubeconfig, the
// clients, and the write helpers that make every write to our custom
// resources fenced (optimistic concurrency on metadata.resourceVersion).
//
// Errors: client-node 2.x throws ApiException with the HTTP status in
// `.code` and the Status object as a JSON *string* in `.body`; transport
// failures are `TypeError: fetch failed` with `cause.code`. Everything here
// classifies errors by those fields, never by message text.
import type { CoreV1Api, CustomObjectsApi, KubernetesListObject, KubernetesObject, V1Secret } from '@kubernetes/client-node';
// Modules of the class and constants alone: the package's index would load all of client-node (kubeconfig.ts).
import { ApiException } from '@kubernetes/client-node/dist/gen/apis/exception.js';
import { setHeaderOptions } from '@kubernetes/client-node/dist/middleware.js';
import { PatchStrategy } from '@kubernetes/client-node/dist/patch.js';
import type { KubeAccess } from './kubeconfig.js';
import { namespacedPath, transportFor, type ApiTransport } from './transport.js';

export { loadKubeConfig, type LoadKubeConfigOptions } from './kubeconfig.js';

export const CERTROTATOR_GROUP = 'certrotator.io';
export const CERTROTATOR_VERSION = 'v1alpha1';
export const CERTIFICATE_ROTATIONS = 'certificaterotations';
export const NODE_ROTATIONS = 'noderotations';
export const CERTIFICATE_INVENTORIES = 'certificateinventories';
export const CERTIFICATE_ROTATION_POLICIES = 'certificaterotationpolicies';

/** The clients a component needs, built once from one kubeconfig. */
export interface KubeClients {
  kc: KubeAccess;
  /** core/v1, through client-node (imported on its first call: KubeAccess.api). */
  core: CoreV1Api;
  certificateRotations: ClusterCustomResource;
  nodeRotations: ClusterCustomResource;
  certificateInventories: ClusterCustomResource;
  certificateRotationPolicies: ClusterCustomResource;
}

export function makeClients(kc: KubeAccess): KubeClients {
  const custom = kc.api((m) => m.CustomObjectsApi);
  const transport = transportFor(kc);
  const resource = (plural: string) => new ClusterCustomResource(custom, CERTROTATOR_GROUP, CERTROTATOR_VERSION, plural, transport);
  return {
    kc,
    core: kc.api((m) => m.CoreV1Api),
    certificateRotations: resource(CERTIFICATE_ROTATIONS),
    nodeRotations: resource(NODE_ROTATIONS),
    certificateInventories: resource(CERTIFICATE_INVENTORIES),
    certificateRotationPolicies: resource(CERTIFICATE_ROTATION_POLICIES),
  };
}

/**
 * Reads a Secret; undefined when there is none. Through the transport: the
 * controller reads its distribution's certificate Secrets when it starts
 * leading and every few hours after (secret-inventory.ts), and that alone
 * should not load client-node.
 */
export function secretReader(kc: KubeAccess): (namespace: string, name: string) => Promise<V1Secret | undefined> {
  const transport = transportFor(kc);
  const core = kc.api((m) => m.CoreV1Api);
  return (namespace, name) =>
    (transport
      ? transport.request<V1Secret>('GET', namespacedPath('/api/v1', 'secrets', namespace, name))
      : core.readNamespacedSecret({ namespace, name })
    ).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
}

// ---------------------------------------------------------------------------
// Errors

/** A write lost an optimistic-concurrency race (HTTP 409). The caller requeues; nothing is lost. */
export class ConflictError extends Error {
  override readonly name = 'ConflictError';
  constructor(
    readonly resource: string,
    readonly objectName: string,
    readonly resourceVersion: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(`conflict writing ${resource}/${objectName} at resourceVersion ${resourceVersion ?? '(none)'}: the object changed, requeue`, options);
  }
}

/** The HTTP status of a client-node 2.x error, if it carries one. */
export function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; statusCode?: unknown };
    // Watch errors carry `statusCode`; ApiException from another module copy carries `code`.
    if (typeof e.statusCode === 'number') return e.statusCode;
    if (typeof e.code === 'number') return e.code;
  }
  return undefined;
}

export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof ConflictError || statusCode(err) === 409;
}

export function isAlreadyExists(err: unknown): boolean {
  // Create of an existing name is a 409 with reason AlreadyExists; an update
  // conflict is 409 with reason Conflict. Only the reason tells them apart.
  return statusCode(err) === 409 && statusReason(err) === 'AlreadyExists';
}

/** The `reason` of the Status object in an ApiException body (a JSON string in 2.x). */
export function statusReason(err: unknown): string | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const body: unknown = err.body;
  try {
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as { reason?: string } | undefined;
    return status?.reason;
  } catch {
    return undefined;
  }
}

/** A short description of an error for logs and Events: never the whole response. */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    try {
      const status = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: string } | undefined;
      if (status?.message) return `HTTP ${err.code}: ${status.message}`;
    } catch {
      /* not JSON */
    }
    return `HTTP ${err.code}`;
  }
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return cause?.code ? `${err.message} (${cause.code})` : err.message;
  }
  return String(err);
}

// ---------------------------------------------------------------------------
// Custom resources

/** Minimal shape of our cluster-scoped custom objects. */
export interface CustomObject<Spec = unknown, Status = unknown> extends KubernetesObject {
  spec?: Spec;
  status?: Status;
}

/** client-node's request options that make a typed API's patch a JSON merge patch. */
export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * One cluster-scoped custom resource (CustomObjectsApi returns `any`; this is
 * where the cast happens, once). Writes that replace state require the
 * object's resourceVersion, so a stale cache can never overwrite a newer
 * write: the API server answers 409 and we throw ConflictError.
 *
 * Requests go through the lean transport when the kubeconfig allows it
 * (src/kube/transport.ts: a quarter to a half of client-node's CPU per
 * request), else (a proxy) through client-node's CustomObjectsApi; both throw
 * the same ApiException.
 */
export class ClusterCustomResource<T extends CustomObject = CustomObject> {
  constructor(
    readonly api: CustomObjectsApi,
    readonly group: string,
    readonly version: string,
    readonly plural: string,
    private readonly transport?: ApiTransport,
  ) {}

  /** The API path of the collection, as informers need it. */
  get path(): string {
    return `/apis/${this.group}/${this.version}/${this.plural}`;
  }

  private params(name: string): { group: string; version: string; plural: string; name: string } {
    return { group: this.group, version: this.version, plural: this.plural, name };
  }

  private objectPath(name: string, subresource = ''): string {
    return `${this.path}/${encodeURIComponent(name)}${subresource}`;
  }

  async get(name: string): Promise<T> {
    if (this.transport) return this.transport.request<T>('GET', this.objectPath(name));
    return (await this.api.getClusterCustomObject(this.params(name))) as T;
  }

  /** Like `get`, but `undefined` for a missing object. */
  async tryGet(name: string): Promise<T | undefined> {
    try {
      return await this.get(name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Every object (in pages of 500 through the transport), optionally only
   * those matching `labelSelector`, each passed through `mapItem` (page by page
   * through the transport).
   */
  async list(labelSelector?: string, mapItem?: (obj: T) => T): Promise<KubernetesListObject<T>> {
    if (this.transport) return this.transport.list<KubernetesListObject<T>>(this.path, { labelSelector }, { mapItem });
    const list = (await this.api.listClusterCustomObject({
      group: this.group,
      version: this.version,
      plural: this.plural,
      labelSelector,
    })) as KubernetesListObject<T>;
    return mapItem ? { ...list, items: list.items.map(mapItem) } : list;
  }

  async create(body: T): Promise<T> {
    if (this.transport) return this.transport.request<T>('POST', this.path, { body });
    return (await this.api.createClusterCustomObject({ group: this.group, version: this.version, plural: this.plural, body })) as T;
  }

  /** Deletes; a missing object counts as deleted. Pass `resourceVersion` to delete only that version. */
  async delete(name: string, opts: { resourceVersion?: string } = {}): Promise<void> {
    const body = opts.resourceVersion ? { preconditions: { resourceVersion: opts.resourceVersion } } : undefined;
    try {
      if (this.transport) await this.transport.request('DELETE', this.objectPath(name), { body });
      else await this.api.deleteClusterCustomObject({ ...this.params(name), body });
    } catch (err) {
      if (isNotFound(err)) return;
      if (statusCode(err) === 409) throw new ConflictError(this.plural, name, opts.resourceVersion, { cause: err });
      throw err;
    }
  }

  /** Replaces the whole object (spec, metadata); fenced by `obj.metadata.resourceVersion`. */
  async replace(obj: T): Promise<T> {
    const name = requireName(obj);
    const rv = requireResourceVersion(obj, this.plural);
    return this.fenced(name, rv, async () =>
      this.transport ? this.transport.request<T>('PUT', this.objectPath(name), { body: obj }) : ((await this.api.replaceClusterCustomObject({ ...this.params(name), body: obj })) as T),
    );
  }

  /**
   * Replaces the status subresource with `status`, fenced by `resourceVersion`
   * (the version the caller read and based its decision on). A 409 becomes a
   * ConflictError: the caller requeues and recomputes from fresh state instead
   * of losing someone else's write.
   */
  async replaceStatus(obj: T, status: T['status']): Promise<T> {
    const name = requireName(obj);
    const rv = requireResourceVersion(obj, this.plural);
    const body = { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name, resourceVersion: rv }, status } as T;
    return this.fenced(name, rv, async () =>
      this.transport
        ? this.transport.request<T>('PUT', this.objectPath(name, '/status'), { body })
        : ((await this.api.replaceClusterCustomObjectStatus({ ...this.params(name), body })) as T),
    );
  }

  /**
   * JSON merge patch of the object (metadata/spec). Set
   * `patch.metadata.resourceVersion` to fence it: the API server then refuses
   * the patch with 409 unless the object is still at that version.
   */
  async mergePatch(name: string, patch: Record<string, unknown>): Promise<T> {
    return this.patch(name, '', patch);
  }

  /** JSON merge patch of the status subresource; fenced the same way as `mergePatch`. */
  async mergePatchStatus(name: string, patch: Record<string, unknown>): Promise<T> {
    return this.patch(name, '/status', patch);
  }

  private async patch(name: string, subresource: '' | '/status', patch: Record<string, unknown>): Promise<T> {
    const rv = (patch.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
    return this.fenced(name, rv, async () => {
      if (this.transport) return this.transport.request<T>('PATCH', this.objectPath(name, subresource), { body: patch, contentType: PatchStrategy.MergePatch });
      const params = { ...this.params(name), body: patch };
      return (await (subresource ? this.api.patchClusterCustomObjectStatus(params, MERGE_PATCH) : this.api.patchClusterCustomObject(params, MERGE_PATCH))) as T;
    });
  }

  private async fenced(name: string, rv: string | undefined, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (statusCode(err) === 409) throw new ConflictError(this.plural, name, rv, { cause: err });
      throw err;
    }
  }
}

function requireName(obj: KubernetesObject): string {
  const name = obj.metadata?.name;
  if (!name) throw new Error('object has no metadata.name');
  return name;
}

function requireResourceVersion(obj: KubernetesObject, resource: string): string {
  const rv = obj.metadata?.resourceVersion;
  // Without a resourceVersion the API server would accept the write
  // unconditionally: that is exactly the lost update we fence against.
  if (!rv) throw new Error(`refusing an unfenced write to ${resource}/${obj.metadata?.name}: no metadata.resourceVersion`);
  return rv;
}
