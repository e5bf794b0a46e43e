// Where the API server is and how to authenticate to it, read without
// @kubernetes/client-node.
//
// Why: client-node is 17 MB of JavaScript (its generated models above all),
// and importing it costs a process about 85 MB of RSS before it does anything
// (measured: a bare Node 24 process 43 MB, with client-node imported 128 MB).
// The controller's memory target at 5,000 nodes is 200 MB, and its hot path
// (lists, watches, our custom resources, Events, the Lease) goes through the
// lean transport (transport.ts), which needs only an endpoint, TLS material and
// a bearer token. So this file reads the kubeconfig the way kubectl does and
// answers those questions itself; client-node is imported only when something
// asks for it (`clientNode()`): typed APIs off the hot path (Secrets,
// ConfigMaps, the Secrets-scope discovery), or a credential only client-node
// speaks (exec plugins, auth providers, basic auth, impersonation).
//
// Both views come from the same parsed file: `clientNode()` hands client-node
// the current context's own entries, so the two can never disagree about
// which cluster or user is meant.
import { readFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { isIPv6 } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

/** The service-account files a pod gets (client-go's rest.InClusterConfig reads the same). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface LoadKubeConfigOptions {
  /** Explicit kubeconfig file (the `--kubeconfig` flag); wins over everything. */
  kubeconfig?: string;
  /** Where a pod's service-account files are (tests give their own). Default SERVICE_ACCOUNT_DIR. */
  serviceAccountDir?: string;
}

/** The current context's cluster, as transport.ts needs it. */
export interface ClusterEndpoint {
  name: string;
  /** Without a trailing slash; may carry a path prefix (a proxy such as Rancher's). */
  server: string;
  skipTLSVerify: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
}

/** Options of an https request that carry identity (the subset of https.RequestOptions we set). */
export interface HttpsCredentialOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
  auth?: string;
  headers?: Record<string, unknown>;
  [k: string]: unknown;
}

type Entry = Record<string, unknown>;
type ClientNode = typeof import('@kubernetes/client-node');

/** One kubeconfig document: the three maps by name, and the current context. */
interface Doc {
  clusters: Map<string, Entry>;
  users: Map<string, Entry>;
  contexts: Map<string, Entry>;
  currentContext?: string;
}

/**
 * The current context of a kubeconfig (or of the pod's service account).
 * `getCurrentCluster`, `getCurrentContext` and `applyToHTTPSOptions` have the
 * meaning of client-node's KubeConfig methods of those names.
 */
export class KubeAccess {
  private clientNodeConfig: Promise<KubeConfig> | undefined;
  private prepare: (kc: KubeConfig) => KubeConfig = (kc) => kc;
  /** The cluster without its CA: what every request asks for (transport.ts builds each URL from it). */
  private readonly endpoint: Readonly<ClusterEndpoint>;

  constructor(
    /** Where it came from, for errors: a file path, `$KUBECONFIG`, or `in-cluster`. */
    readonly source: string,
    private readonly context: string,
    private readonly cluster: ClusterEndpoint & { caFile?: string; caData?: string },
    /** The user entry as written in the kubeconfig (paths made absolute). */
    private readonly user: Entry,
    /** The context entry as written (cluster, user, namespace). */
    private readonly contextEntry: Entry,
  ) {
    const { caFile: _f, caData: _d, ...endpoint } = cluster;
    this.endpoint = endpoint;
  }

  getCurrentContext(): string {
    return this.context;
  }

  getCurrentCluster(): Readonly<ClusterEndpoint> {
    return this.endpoint;
  }

  /**
   * True when authenticating needs client-node: an exec plugin, an auth
   * provider, basic auth or impersonation. Certificates and tokens (inline or
   * from a file) are read here.
   */
  needsClientNode(): boolean {
    const u = this.user;
    return u.exec != null || u['auth-provider'] != null || u.username != null || u.as != null;
  }

  /**
   * Sets the TLS options and the Authorization header of a request. Files are
   * read on every call (the transport calls it once per OPTIONS_TTL_MS), so a
   * renewed client certificate or a rotated service-account token is used.
   */
  async applyToHTTPSOptions(opts: HttpsCredentialOptions): Promise<void> {
    if (this.needsClientNode()) {
      await (await this.clientNode()).applyToHTTPSOptions(opts as Parameters<KubeConfig['applyToHTTPSOptions']>[0]);
      return;
    }
    const c = this.cluster;
    if (c.skipTLSVerify) opts.rejectUnauthorized = false;
    if (c.tlsServerName) opts.servername = c.tlsServerName;
    const ca = this.material('cluster', 'certificate-authority', c.caFile, c.caData);
    if (ca) opts.ca = ca;
    const u = this.user;
    const cert = this.material('user', 'client-certificate', str(u['client-certificate']), str(u['client-certificate-data']));
    if (cert) opts.cert = cert;
    const key = this.material('user', 'client-key', str(u['client-key']), str(u['client-key-data']));
    if (key) opts.key = key;
    const token = str(u.token) ?? this.tokenFromFile(str(u.tokenFile));
    if (token) opts.headers = { ...opts.headers, Authorization: `Bearer ${token}` };
  }

  /** The same context and credentials against another address (a tunnel; tests' TCP proxies). */
  withServer(server: string): KubeAccess {
    return new KubeAccess(this.source, this.context, { ...this.cluster, server: server.replace(/\/$/, '') }, this.user, this.contextEntry).onClientNode(this.prepare);
  }

  /** Called with client-node's KubeConfig when it is first made (the controller's connection reuse). */
  onClientNode(prepare: (kc: KubeConfig) => KubeConfig): this {
    this.prepare = prepare;
    return this;
  }

  /**
   * One of client-node's typed APIs (e.g. `kc.api((m) => m.CoreV1Api)`),
   * handed out at once and made on its first call: every method of a typed
   * API returns a promise, so a caller cannot tell, and a component that never
   * calls it never imports client-node.
   */
  api<A extends object>(pick: (m: ClientNode) => new (...args: never[]) => A): A {
    let made: Promise<A> | undefined;
    const make = (): Promise<A> =>
      (made ??= Promise.all([import('@kubernetes/client-node'), this.clientNode()]).then(([m, kc]) => kc.makeApiClient(pick(m) as never) as A));
    return new Proxy({} as A, {
      get: (_, method) =>
        // Not a thenable: `await api` must not call a method named `then`.
        method === 'then' || typeof method === 'symbol'
          ? undefined
          : async (...args: unknown[]) => {
              const api = (await make()) as Record<string, (...a: unknown[]) => unknown>;
              return api[method]!(...args);
            },
    });
  }

  /**
   * client-node's KubeConfig for the same context, imported on first use.
   * Everything that needs client-node goes through here or `api`.
   */
  clientNode(): Promise<KubeConfig> {
    this.clientNodeConfig ??= import('@kubernetes/client-node').then(({ KubeConfig }) => {
      // Only the current context's entries, in kubeconfig form: client-node maps them itself.
      const { caFile, caData, name, server, skipTLSVerify, tlsServerName, proxyUrl } = this.cluster;
      const cluster: Entry = { server };
      if (caFile) cluster['certificate-authority'] = caFile;
      if (caData) cluster['certificate-authority-data'] = caData;
      if (skipTLSVerify) cluster['insecure-skip-tls-verify'] = true;
      if (tlsServerName) cluster['tls-server-name'] = tlsServerName;
      if (proxyUrl) cluster['proxy-url'] = proxyUrl;
      // client-node reads a kubeconfig's tokenFile never (it looks for `token-file`, once);
      // its tokenFile auth provider re-reads the file, as a rotating service-account token needs.
      const { tokenFile, ...rest } = this.user;
      const user = tokenFile && !rest.token && !rest['auth-provider'] ? { ...rest, 'auth-provider': { name: 'tokenFile', config: { tokenFile } } } : this.user;
      const userName = str(this.contextEntry.user) ?? 'user';
      const kc = new KubeConfig();
      kc.loadFromString(
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name, cluster }],
          users: [{ name: userName, user }],
          contexts: [{ name: this.context, context: { ...this.contextEntry, cluster: name, user: userName } }],
          'current-context': this.context,
        }),
      );
      return this.prepare(kc);
    });
    return this.clientNodeConfig;
  }

  private material(entry: 'cluster' | 'user', field: string, file: string | undefined, data: string | undefined): Buffer | undefined {
    if (data) return Buffer.from(data, 'base64');
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(`kubeconfig ${this.source}: ${entry} ${field} ${file}: ${(e as Error).message}`);
    }
  }

  private tokenFromFile(file: string | undefined): string | undefined {
    if (!file) return undefined;
    try {
      return readFileSync(file, 'utf8').trim() || undefined;
    } catch (e) {
      throw new Error(`kubeconfig ${this.source}: user tokenFile ${file}: ${(e as Error).message}`);
    }
  }
}

/**
 * Loads the current context the way kubectl and client-go do: `--kubeconfig`,
 * then `$KUBECONFIG` (a list of files, merged: the first to define a name or
 * the current context wins), then the pod's service account when
 * KUBERNETES_SERVICE_HOST is set (its token file is re-read, as bound tokens
 * rotate hourly), then `~/.kube/config`.
 */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}, env: NodeJS.ProcessEnv = process.env): KubeAccess {
  if (opts.kubeconfig) return fromFiles([opts.kubeconfig], opts.kubeconfig);
  if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(delimiter).filter(Boolean);
    return fromFiles(files, files.length === 1 ? files[0]! : `$KUBECONFIG (${files.join(delimiter)})`);
  }
  const saDir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (env.KUBERNETES_SERVICE_HOST) return inCluster(env, saDir);
  const home = join(homedir(), '.kube', 'config');
  if (existsSync(home)) return fromFiles([home], home);
  if (existsSync(join(saDir, 'token'))) return inCluster(env, saDir);
  throw new Error('no Kubernetes cluster configured (in-cluster, KUBECONFIG or --kubeconfig)');
}

function inCluster(env: NodeJS.ProcessEnv, saDir: string): KubeAccess {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new Error('in-cluster: KUBERNETES_SERVICE_HOST is not set');
  const server = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  return new KubeAccess(
    'in-cluster',
    'inClusterContext',
    { name: 'inCluster', server, skipTLSVerify: false, caFile: join(saDir, 'ca.crt') },
    { tokenFile: join(saDir, 'token') },
    { cluster: 'inCluster', user: 'inClusterUser' },
  );
}

function fromFiles(files: string[], source: string): KubeAccess {
  return fromDocs(files.map(readDoc), source);
}

/**
 * The current context of a kubeconfig already in memory (the parsed YAML),
 * for tests and tools that make one; relative paths resolve against `dir`.
 */
export function kubeAccessFromConfig(config: unknown, source = 'inline kubeconfig', dir = process.cwd()): KubeAccess {
  return fromDocs([toDoc(config, dir, source)], source);
}

function fromDocs(docs: Doc[], source: string): KubeAccess {
  const merged: Doc = { clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const doc of docs) {
    for (const k of ['clusters', 'users', 'contexts'] as const) {
      for (const [name, entry] of doc[k]) if (!merged[k].has(name)) merged[k].set(name, entry);
    }
    merged.currentContext ??= doc.currentContext;
  }
  const fail = (what: string): never => {
    throw new Error(`kubeconfig ${source}: ${what}`);
  };
  const context = merged.currentContext ?? fail('current-context is not set');
  const ctx = merged.contexts.get(context) ?? fail(`current-context "${context}" is not among its contexts`);
  const clusterName = str(ctx.cluster) ?? fail(`context "${context}" has no cluster`);
  const c = merged.clusters.get(clusterName) ?? fail(`context "${context}" names cluster "${clusterName}", which is not among its clusters`);
  const server = str(c.server) ?? fail(`cluster "${clusterName}" has no server`);
  const userName = str(ctx.user);
  const user = userName === undefined ? {} : (merged.users.get(userName) ?? fail(`context "${context}" names user "${userName}", which is not among its users`));
  return new KubeAccess(
    source,
    context,
    {
      name: clusterName,
      server: server.replace(/\/$/, ''),
      skipTLSVerify: c['insecure-skip-tls-verify'] === true,
      tlsServerName: str(c['tls-server-name']),
      proxyUrl: str(c['proxy-url']),
      caFile: str(c['certificate-authority']),
      caData: str(c['certificate-authority-data']),
    },
    user,
    ctx,
  );
}

function readDoc(file: string): Doc {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`kubeconfig ${file}: ${(e as Error).message}`);
  }
  return toDoc(raw, dirname(resolve(file)), file);
}

/** One document's maps by name, with relative file paths resolved against `dir` (as client-go does). */
function toDoc(raw: unknown, dir: string, source: string): Doc {
  const doc = (raw ?? {}) as Record<string, unknown>;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`kubeconfig ${source}: not a kubeconfig (a ${Array.isArray(doc) ? 'list' : typeof doc})`);
  const absolute = (entry: Entry, fields: string[]): Entry => {
    const out = { ...entry };
    for (const f of fields) {
      const v = str(out[f]);
      if (v && !isAbsolute(v)) out[f] = join(dir, v);
    }
    return out;
  };
  const named = (key: string, inner: string, fields: string[]): Map<string, Entry> => {
    const list = doc[key];
    const m = new Map<string, Entry>();
    if (list == null) return m;
    if (!Array.isArray(list)) throw new Error(`kubeconfig ${source}: ${key} is not a list`);
    list.forEach((item: unknown, i) => {
      const e = (item ?? {}) as Entry;
      const name = str(e.name);
      if (name === undefined) throw new Error(`kubeconfig ${source}: ${key}[${i}].name is missing`);
      if (!m.has(name)) m.set(name, absolute((e[inner] ?? {}) as Entry, fields));
    });
    return m;
  };
  return {
    clusters: named('clusters', 'cluster', ['certificate-authority']),
    users: named('users', 'user', ['client-certificate', 'client-key', 'tokenFile']),
    contexts: named('contexts', 'context', []),
    currentContext: str(doc['current-context']),
  };
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}
