// Which files a rotation of a scope touches on one node: the catalog entries for
// the services in scope whose roles match the node, with paths filled in and
// per-host names ({host}) expanded from what is on disk.
import { posix } from 'node:path';
import { fillPath } from '../distributions/index.js';
import { isServiceOf, SERVICES_BY_DISTRIBUTION } from '../distributions/services.js';
import type { CaFiles, CertFile, DistributionCatalog, NodeRole } from '../distributions/types.js';
import type { HostRoot } from './root.js';

export type Scope = { readonly all: true } | { readonly services: readonly string[] };

export interface PlannedFile {
  readonly service: string;
  readonly spec: CertFile;
  // Unique per node: the catalog id plus the expanded {host} part.
  readonly id: string;
  readonly cert?: string;
  readonly key?: string;
  readonly ca?: CaFiles;
  readonly caCert?: string;
  readonly trigger?: string;
  // remove-to-regenerate: the CA that signs the file when the distribution makes it.
  readonly distributionCa?: string;
  readonly copyOf?: { readonly cert: string; readonly key: string };
  // A trigger-renewed file that is not on disk: the run only writes the trigger
  // and the distribution makes a new file at start (see planEntries).
  readonly missing?: boolean;
}

export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

export function scopeServices(catalog: DistributionCatalog, scope: Scope): string[] {
  if ('all' in scope) return SERVICES_BY_DISTRIBUTION[catalog.distribution].filter((s) => s in catalog.services);
  for (const s of scope.services) {
    if (!isServiceOf(catalog.distribution, s) || !(s in catalog.services)) {
      throw new PlanError(
        `service "${s}" is not a ${catalog.distribution} service (valid: ${SERVICES_BY_DISTRIBUTION[catalog.distribution].join(', ')})`,
      );
    }
  }
  return [...new Set(scope.services)];
}

export async function detectRoles(catalog: DistributionCatalog, host: HostRoot, vars: Record<string, string>): Promise<NodeRole[]> {
  const roles = new Set<NodeRole>(catalog.defaultRoles);
  for (const marker of catalog.roleMarkers) {
    const path = fillPath(marker.path, vars);
    if (path.includes('{host}') ? (await expandHosts(host, path, notOurs(catalog, vars))).length > 0 : await host.exists(path)) roles.add(marker.role);
  }
  return [...roles];
}

/**
 * The host files of the catalog's user-provided certificates (RKE's external
 * etcd kube-etcd-client.pem, -key.pem, kube-etcd-client-ca.pem): they fit a
 * {host} pattern (kube-etcd-{host}.pem) but are no host's certificate, so
 * expansion skips them (see the catalog's userProvided).
 */
function notOurs(catalog: DistributionCatalog, vars: Record<string, string>): ReadonlySet<string> {
  return new Set(catalog.userProvided.flatMap((u) => [u.cert, ...(u.key ? [u.key] : [])]).map((p) => fillPath(p, vars)));
}

async function expandHosts(host: HostRoot, pathWithHost: string, excluded: ReadonlySet<string>): Promise<string[]> {
  const dir = posix.dirname(pathWithHost);
  const [prefix, suffix] = posix.basename(pathWithHost).split('{host}') as [string, string];
  return (await host.list(dir))
    .filter((n) => n.startsWith(prefix) && n.endsWith(suffix) && n.length > prefix.length + suffix.length && !excluded.has(posix.join(dir, n)))
    .map((n) => n.slice(prefix.length, n.length - suffix.length));
}

export interface PlanOptions {
  readonly dataDir: string;
  // Also plan the files the distribution rewrites at every start (RKE2's agent
  // kubelet pairs), whatever the scope: a restart changes them, so they must be
  // backed up, restored on rollback and reported.
  readonly withRestartSideEffects?: boolean;
}

export async function planNode(
  catalog: DistributionCatalog,
  host: HostRoot,
  scope: Scope,
  roles: readonly NodeRole[],
  opts: PlanOptions,
): Promise<PlannedFile[]> {
  const vars = { dataDir: opts.dataDir };
  const services = scopeServices(catalog, scope);
  const entries: { service: string; spec: CertFile }[] = services.flatMap((service) =>
    catalog.services[service]!.files.map((spec) => ({ service, spec })),
  );
  if ('all' in scope) entries.push(...allOnlyEntries(catalog));
  const excluded = notOurs(catalog, vars);
  const planned = await planEntries(host, entries, roles, vars, excluded);
  // Only a node that is restarted anyway gets the side effects; an irrelevant
  // service must leave the node alone.
  if (planned.length && opts.withRestartSideEffects) {
    const extra = Object.entries(catalog.services).flatMap(([service, entry]) =>
      entry.files.filter((spec) => spec.rewrittenOnEveryStart && !entries.some((e) => e.spec === spec)).map((spec) => ({ service, spec })),
    );
    planned.push(...(await planEntries(host, extra, roles, vars, excluded)));
  }
  return planned;
}

// Files only a rotation of every service renews (RKE's proxy-client: rke cert
// rotate without --service), under the service name "all".
const allOnlyEntries = (catalog: DistributionCatalog) => catalog.allOnlyFiles.map((spec) => ({ service: 'all', spec }));

/** The files of allOnlyEntries on this node, planned alone (what check and the inventory read besides each service's). */
export function planAllOnlyFiles(catalog: DistributionCatalog, host: HostRoot, roles: readonly NodeRole[], opts: Pick<PlanOptions, 'dataDir'>): Promise<PlannedFile[]> {
  const vars = { dataDir: opts.dataDir };
  return planEntries(host, allOnlyEntries(catalog), roles, vars, notOurs(catalog, vars));
}

async function planEntries(
  host: HostRoot,
  entries: readonly { service: string; spec: CertFile }[],
  roles: readonly NodeRole[],
  vars: Record<string, string>,
  excluded: ReadonlySet<string>,
): Promise<PlannedFile[]> {
  const planned: PlannedFile[] = [];
  for (const { service, spec } of entries) {
    if (!spec.roles.some((r) => roles.includes(r))) continue;
    const certT = spec.cert && fillPath(spec.cert, vars);
    const keyT = spec.key && fillPath(spec.key, vars);
    const hosts = (certT ?? keyT)!.includes('{host}') ? await expandHosts(host, (certT ?? keyT)!, excluded) : [undefined];
    let found = false;
    for (const h of hosts) {
      const cert = certT && (h === undefined ? certT : certT.replace('{host}', h));
      const key = keyT && (h === undefined ? keyT : keyT.replace('{host}', h));
      // A per-host pattern also matches "<name>-key.pem"; only complete pairs count.
      if (h !== undefined && !((!cert || (await host.exists(cert))) && (!key || (await host.exists(key))))) continue;
      const present = (!cert || (await host.exists(cert))) && (!key || (await host.exists(key)));
      const r = spec.renewal;
      // A file renewed by a trigger is the distribution's own cache of what it
      // serves: rke2's supervisor makes dynamic-cert.json anew at start when the
      // trigger is there (k3s pkg/cluster/https.go newListener: RegenerateCerts
      // removes server/tls/dynamic-cert-regenerate and forces a new certificate),
      // and `k3s certificate rotate` writes that trigger without looking for the
      // file (pkg/cli/cert/cert.go). Deleting the file is the usual remedy for a
      // bad one, so its absence is planned as "write the trigger", not refused.
      const regeneratedFromTrigger = !present && r.kind === 'trigger';
      if (!present && !regeneratedFromTrigger) {
        if (spec.optional) continue;
        const missing = cert && !(await host.exists(cert)) ? cert : key!;
        throw new PlanError(`${missing}: missing (service ${service}, ${spec.id})`);
      }
      found = true;
      planned.push({
        service,
        spec,
        id: h === undefined ? spec.id : `${spec.id}-${h}`,
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ...(r.kind === 'sign' ? { ca: { cert: fillPath(r.ca.cert, vars), key: fillPath(r.ca.key, vars) } } : {}),
        ...(r.kind === 'reissued-on-start' ? { caCert: fillPath(r.ca, vars) } : {}),
        ...(r.kind === 'trigger' ? { caCert: fillPath(r.ca.cert, vars) } : {}),
        ...(r.kind === 'trigger' ? { trigger: fillPath(r.trigger, vars) } : {}),
        ...(r.kind === 'remove-to-regenerate' && r.distributionSigned ? { distributionCa: fillPath(r.distributionSigned.ca.cert, vars) } : {}),
        ...(r.kind === 'reissued-on-start' && r.copyOf
          ? { copyOf: { cert: `${fillPath(r.copyOf, vars)}.crt`, key: `${fillPath(r.copyOf, vars)}.key` } }
          : {}),
        ...(regeneratedFromTrigger ? { missing: true } : {}),
      });
    }
    if (!found && !spec.optional && hosts.length === 0) {
      throw new PlanError(`${certT ?? keyT}: no file matches (service ${service}, ${spec.id})`);
    }
  }
  return planned;
}
