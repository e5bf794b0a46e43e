// A lean HTTP transport to the API server for the requests and watches a
// component makes all the time: our custom resources (get, list, create,
// replace, patch, delete) and every informer's list and watch.
//
// Why not client-node for these: each request through its generated API
// goes through an observable middleware chain, ObjectSerializer on the way
// in and out, undici's fetch and web streams; a watch goes through web
// streams, Readable.fromWeb and readline. Measured against the bench's
// control plane (a NodeRotation status patch, the same TLS identity and
// keep-alive): 4.5 ms of CPU per request through client-node, 1.8 ms through
// node:https. At 5,000 nodes that difference is most of the controller's CPU.
//
// Credentials come from the kubeconfig (kubeconfig.ts, which reads
// certificates and tokens itself and asks client-node only for exec plugins
// and auth providers): `applyToHTTPSOptions` turns them into TLS options and
// headers. Those are re-read every OPTIONS_TTL_MS, so a rotated client
// certificate or service-account token is picked up within it, and each TLS
// identity keeps one keep-alive connection pool.
//
// A kubeconfig with a proxy-url gets no transport (`transportFor` returns
// undefined), and callers use client-node for it, which speaks proxies.
//
// Errors look like client-node's, so one set of classifiers serves both:
// an HTTP error is an ApiException with the status in `.code` and the body as
// a string; a watch that the server refuses is an Error with `.statusCode`.
import { createHash } from 'node:crypto';
import http, { STATUS_CODES } from 'node:http';
import https from 'node:https';
// The module of the class alone: importing the package's index would load all of client-node (kubeconfig.ts says why not).
import { ApiException } from '@kubernetes/client-node/dist/gen/apis/exception.js';

/**
 * Where the API server is and how to authenticate: kubeconfig.ts's KubeAccess,
 * or client-node's KubeConfig (both have these methods).
 */
export interface ApiCredentials {
  getCurrentContext(): string;
  getCurrentCluster(): { server: string; proxyUrl?: string } | null;
  applyToHTTPSOptions(opts: Record<string, unknown>): Promise<void>;
}

/** How long TLS options and headers read from the kubeconfig serve later requests. */
export const OPTIONS_TTL_MS = 10_000;
/** A request (not a watch) that has not answered in this long is abandoned; kube-apiserver's own --request-timeout default is 60 s. */
export const REQUEST_TIMEOUT_MS = 60_000;
/** A watch that has sent nothing for this long is closed and resumed (client-node's Watch uses the same 30 s). */
export const WATCH_IDLE_TIMEOUT_MS = 30_000;
/** Page size of lists (client-go's reflector lists in pages of 500 too): bounds the size of one response. */
export const LIST_PAGE_SIZE = 500;

export type Query = Record<string, string | number | boolean | undefined>;

interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Content-Type of the body (merge patches need their own). */
  contentType?: string;
}

/** The TLS options that make a connection's identity (what a pool is kept for). */
const TLS_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

/** The TLS identity a connection pool serves: requests with another identity need their own pool. */
export function tlsIdentity(options: Record<string, unknown>): string {
  const h = createHash('sha256');
  for (const k of TLS_OPTIONS) {
    h.update(`${k}=${String(options[k] ?? '')};`);
  }
  return h.digest('hex');
}

interface Credentials {
  context: string;
  at: number;
  agent: http.Agent;
  headers: Record<string, string>;
  auth?: string;
}

export class ApiTransport {
  private credentials: Credentials | undefined;
  private readonly pools = new Map<string, http.Agent>();

  constructor(
    private readonly kc: ApiCredentials,
    private readonly now: () => number = Date.now,
  ) {}

  /** A JSON request; resolves to the parsed body (undefined for an empty one). */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const c = await this.current();
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string | number> = { ...c.headers, Accept: 'application/json' };
    if (payload !== undefined) {
      headers['Content-Type'] = opts.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(payload);
    }
    return new Promise<T>((resolve, reject) => {
      const url = this.url(path, opts.query);
      const req = clientOf(url).request(url, { method, agent: c.agent, auth: c.auth, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          if (code < 200 || code >= 300) {
            reject(new ApiException(code, STATUS_CODES[code] ?? 'Unknown status', text, res.headers as Record<string, string>));
            return;
          }
          try {
            resolve((text ? JSON.parse(text) : undefined) as T);
          } catch (err) {
            reject(new Error(`${method} ${path}: the API server's answer is not JSON (${(err as Error).message})`));
          }
        });
      });
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path}: no answer from the API server in ${REQUEST_TIMEOUT_MS / 1000} s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /**
   * Lists a collection page by page and returns one list, as client-go's
   * reflector does. The pages come from one snapshot (the continue token pins
   * it), whose resourceVersion is the first page's.
   *
   * `mapItem` is applied to each page as it arrives, so only one page of
   * whole objects is alive at a time: at 5,000 Nodes (about 4 KB of JSON
   * each) keeping every whole Node until the end of the list, to cut them down
   * afterwards, grew the controller's heap by tens of MB at start, and the
   * process kept that memory.
   */
  async list<L extends { items: unknown[]; metadata?: { resourceVersion?: string; continue?: string } }>(
    path: string,
    query: Query = {},
    opts: { pageSize?: number; mapItem?: (item: L['items'][number]) => L['items'][number] } = {},
  ): Promise<L> {
    const { pageSize = LIST_PAGE_SIZE, mapItem } = opts;
    let first: L | undefined;
    let next: string | undefined;
    do {
      const page: L = await this.request<L>('GET', path, { query: { ...query, limit: pageSize, continue: next } });
      const items = mapItem ? page.items.map(mapItem) : page.items;
      if (first) for (const item of items) first.items.push(item);
      else first = { ...page, items };
      next = page.metadata?.continue || undefined;
    } while (next);
    if (first!.metadata) delete first!.metadata.continue;
    return first!;
  }

  /**
   * Watches `path` as client-node's Watch.watch does (same callback and done
   * contract, so ListWatch can use it): one callback per event line, `done`
   * once, with null when the server closed the watch, or the error.
   */
  async watch(
    path: string,
    query: Query,
    callback: (type: string, object: unknown, event: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const c = await this.current();
    const controller = new AbortController();
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    // Assigned synchronously below; `finish` only runs after that.
    let req!: http.ClientRequest;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      req.destroy();
      done(err);
    };
    const idle = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => finish(new DOMException(`watch ${path}: nothing for ${WATCH_IDLE_TIMEOUT_MS / 1000} s`, 'TimeoutError')), WATCH_IDLE_TIMEOUT_MS);
      timer.unref();
    };
    controller.signal.addEventListener('abort', () => finish(new DOMException('This operation was aborted', 'AbortError')), { once: true });
    const url = this.url(path, { ...query, watch: true });
    req = clientOf(url).request(url, { method: 'GET', agent: c.agent, auth: c.auth, headers: { ...c.headers, Accept: 'application/json' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        finish(Object.assign(new Error(STATUS_CODES[res.statusCode ?? 0] ?? `HTTP ${res.statusCode}`), { statusCode: res.statusCode }));
        return;
      }
      idle();
      res.setEncoding('utf8');
      let pending = '';
      res.on('data', (chunk: string) => {
        idle();
        pending += chunk;
        let start = 0;
        let nl: number;
        while ((nl = pending.indexOf('\n', start)) >= 0) {
          const line = pending.slice(start, nl);
          start = nl + 1;
          if (!line.trim()) continue;
          try {
            const event = JSON.parse(line) as { type: string; object: unknown };
            callback(event.type, event.object, event);
          } catch {
            // As client-node's Watch: a line that is not JSON is skipped (and a
            // throwing callback does not end the watch).
          }
        }
        pending = pending.slice(start);
      });
      res.on('error', finish);
      res.on('end', () => finish(null));
      res.on('close', () => finish(null));
    });
    req.on('error', finish);
    idle();
    req.end();
    return controller;
  }

  private url(path: string, query: Query = {}): URL {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster in the kubeconfig');
    // Appended, not resolved: a server URL may carry a path prefix (a proxy such as Rancher's).
    const url = new URL(cluster.server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    return url;
  }

  /** The TLS options and headers of the current context, read at most once per OPTIONS_TTL_MS. */
  private async current(): Promise<Credentials> {
    const context = this.kc.getCurrentContext();
    const c = this.credentials;
    if (c && c.context === context && this.now() - c.at < OPTIONS_TTL_MS) return c;
    const opts: https.RequestOptions & Record<string, unknown> = {};
    await this.kc.applyToHTTPSOptions(opts);
    const tls: https.AgentOptions = {};
    for (const k of TLS_OPTIONS) {
      if (opts[k] !== undefined) (tls as Record<string, unknown>)[k] = opts[k];
    }
    const plain = this.url('').protocol === 'http:';
    const id = plain ? 'http' : tlsIdentity(tls as Record<string, unknown>);
    let agent = this.pools.get(id);
    if (!agent) {
      // One pool per identity; the old one's idle sockets close on their own (keep-alive timeout).
      const keepAlive = { keepAlive: true, keepAliveMsecs: 30_000 };
      agent = plain ? new http.Agent(keepAlive) : new https.Agent({ ...tls, ...keepAlive });
      this.pools.set(id, agent);
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries((opts.headers ?? {}) as Record<string, unknown>)) headers[k] = String(v);
    this.credentials = { context, at: this.now(), agent, headers, auth: typeof opts.auth === 'string' ? opts.auth : undefined };
    return this.credentials;
  }

  /** Closes the idle connections (at shutdown). */
  close(): void {
    for (const agent of this.pools.values()) agent.destroy();
    this.pools.clear();
  }
}

/** The API path of a namespaced resource's collection, or of one object with `name`. */
export function namespacedPath(groupVersion: string, plural: string, namespace: string, name?: string): string {
  const collection = `${groupVersion}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
  return name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`;
}

/** node:http for a plain-http server (a test's, or kubectl proxy's), node:https otherwise. */
function clientOf(url: URL): { request: typeof http.request } {
  return url.protocol === 'http:' ? http : https;
}

const transports = new WeakMap<ApiCredentials, ApiTransport | null>();

/**
 * The one transport of `kc` (shared by its clients and informers, so they
 * share connections), or undefined when the kubeconfig needs something only
 * client-node does: a proxy.
 */
export function transportFor(kc: ApiCredentials): ApiTransport | undefined {
  let t = transports.get(kc);
  if (t === undefined) {
    const cluster = kc.getCurrentCluster();
    t = cluster && !cluster.proxyUrl && /^https?:\/\//.test(cluster.server) ? new ApiTransport(kc) : null;
    transports.set(kc, t);
  }
  return t ?? undefined;
}
