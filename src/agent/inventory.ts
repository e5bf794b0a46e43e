// The agent's read-only inventory of its node's certificates: at start and on a
// schedule (default every 6 hours) it reads every certificate file of the
// catalog that is on this node, as `certrotator node check` does, and exports
// each file's notAfter, whether it has expired, and read errors, so a cluster's
// expiry is visible (and alertable) before anything is rotated — RKE2 renews
// only when its service starts, so nodes that never restart expire unnoticed
// (rancher/rke2#589). It never writes to the host.
//
// It also reads the certificate each endpoint really serves (with the agent's
// node addresses): after a file was renewed and its component not restarted,
// the disk says one thing and clients get another; certificate_served_stale
// says so, and the served notAfter is what expires first in practice.
import type { Logger } from 'pino';
import { catalogFor, fillPath, templatePattern, type Distribution, type DistributionCatalog, type NodeRole } from '../distributions/index.js';
import { inspectNode, type CertificateReport } from '../host/inspect.js';
import { servedCertificate, type NodeAddresses } from '../host/verify.js';
import { serialOf } from '../pki/certfile.js';
import { detectRoles } from '../host/plan.js';
import { openHost } from '../host/rotation.js';
import type { CertrotatorMetrics } from '../observability/metrics.js';
import type { InvolvedObject } from '../kube/events.js';
import { ExpiryWarner } from './expiry-warnings.js';
import { PeriodicScan } from '../observability/periodic.js';

export interface InventoryOptions {
  nodeName: string;
  distribution: Distribution;
  hostRoot: string;
  /** Relative to the host root; the catalog's default when absent. */
  dataDir?: string;
  metrics: Pick<CertrotatorMetrics, 'certificateNotAfter' | 'certificateExpired' | 'certificateReadErrorsTotal' | 'certificateServedStale'>;
  /** Where this node's listeners are reached; without it, served certificates are not read. */
  addresses?: NodeAddresses;
  /** Called with every scan (the CertificateInventory writer); a failure is logged, the metrics stand. */
  publish?: (scan: InventoryScan) => Promise<void>;
  log: Logger;
  /** Where the Node's expiry Warning Events go (the agent's EventRecorder); without it, none. */
  events?: { warning(obj: InvolvedObject, reason: string, message: string): void };
  now?: () => Date;
}

/** One certificate the scan read: a file (path) or what an endpoint serves (endpoint). */
export interface InventoryItem {
  service: string;
  path?: string;
  endpoint?: string;
  notAfter: string;
}

export interface InventoryScan {
  /** When the scan ran, and the roles it found on the node. */
  at: string;
  roles: NodeRole[];
  items: InventoryItem[];
  /** What could not be read, each with its reason (the series carry no reasons). */
  unreadable: string[];
  files: number;
  expired: number;
  errors: number;
  /** The earliest notAfter found, with its file. */
  earliest?: { path: string; notAfter: string };
  /** Endpoints read, and those serving a certificate that is none of their service's files. */
  endpoints: number;
  stale: string[];
  /** Asked for after this node finished a rotation (scanSoon): written even if it reads the same. */
  afterChange?: boolean;
}

export class NodeInventory {
  private readonly periodic = new PeriodicScan(
    () => this.scan(),
    (e: unknown) => this.o.log.error({ err: (e as Error).message }, 'certificate inventory failed'),
  );
  private readonly warner: ExpiryWarner | undefined;
  /** Set by scanSoon, taken by the next scan that starts (not one already under way: it may have read the old files). */
  private changed = false;

  constructor(private readonly o: InventoryOptions) {
    // uid = the node's name, as the kubelet sets it on Node Events, so `kubectl describe node` shows them.
    const node: InvolvedObject = { apiVersion: 'v1', kind: 'Node', metadata: { name: o.nodeName, uid: o.nodeName } };
    this.warner = o.events && new ExpiryWarner((w) => o.events!.warning(node, w.reason, w.message));
  }

  /** Reads every certificate of this node once and replaces the node's series with what it found. */
  async scan(): Promise<InventoryScan> {
    const afterChange = this.changed;
    this.changed = false;
    const catalog = catalogFor(this.o.distribution);
    const dataDir = this.o.dataDir ?? catalog.defaultDataDir;
    const host = openHost(catalog, this.o.hostRoot, dataDir);
    const now = this.o.now?.() ?? new Date();
    const roles = await detectRoles(catalog, host, { dataDir });
    const reports = await inspectNode(catalog, host, roles, dataDir, { now });
    const { certificateNotAfter, certificateExpired, certificateReadErrorsTotal } = this.o.metrics;
    // A file that is gone since the last scan must not keep its series.
    certificateNotAfter.reset();
    certificateExpired.reset();
    this.o.metrics.certificateServedStale.reset();
    const out: InventoryScan = { at: now.toISOString(), roles: [...roles], items: [], unreadable: [], files: reports.length, expired: 0, errors: 0, endpoints: 0, stale: [], ...(afterChange ? { afterChange } : {}) };
    for (const r of reports) {
      // A service whose files cannot be planned (one missing) is one error without a path, as `node check` reports it.
      const labels = { node: this.o.nodeName, service: r.service, path: r.path ? `/${r.path}` : '' };
      if (r.error !== undefined || !r.notAfter) {
        certificateReadErrorsTotal.inc(labels);
        out.errors++;
        out.unreadable.push(`${labels.path || `service ${r.service}`}: ${r.error ?? 'no notAfter'}`);
        continue;
      }
      const notAfter = this.record(labels, { service: r.service, path: labels.path, notAfter: r.notAfter }, now, out);
      if (!out.earliest || notAfter < Date.parse(out.earliest.notAfter)) out.earliest = { path: labels.path, notAfter: r.notAfter };
    }
    if (this.o.addresses) await this.scanServed(catalog, dataDir, roles, reports, now, out);
    const warned = this.warner?.warn(reports, now) ?? 0;
    const { items, unreadable, ...summary } = out;
    this.o.log.info({ ...summary, warned }, 'certificate inventory of this node');
    await this.o.publish?.(out).catch((e: unknown) => this.o.log.warn({ err: (e as Error).message }, 'could not write this node\'s CertificateInventory'));
    return out;
  }

  // One certificate read, a file or what an endpoint serves: its series, the
  // expired count and the scan's list. Returns its notAfter (ms).
  private record(labels: { node: string; service: string; path?: string; endpoint?: string }, item: InventoryItem, now: Date, out: InventoryScan): number {
    const notAfter = Date.parse(item.notAfter);
    this.o.metrics.certificateNotAfter.set(labels, Math.floor(notAfter / 1000));
    const expired = notAfter <= now.getTime();
    this.o.metrics.certificateExpired.set(labels, expired ? 1 : 0);
    if (expired) out.expired++;
    out.items.push(item);
    return notAfter;
  }

  // Every endpoint that serves a certificate file present on this node: its served
  // notAfter, and whether it is one of the service's files on disk at all.
  private async scanServed(catalog: DistributionCatalog, dataDir: string, roles: readonly NodeRole[], reports: readonly CertificateReport[], now: Date, out: InventoryScan): Promise<void> {
    const { certificateReadErrorsTotal, certificateServedStale } = this.o.metrics;
    const seen = new Set<string>();
    for (const entry of Object.values(catalog.services)) {
      for (const spec of entry.files) {
        if (!spec.cert || !spec.servedOn || !spec.roles.some((r) => roles.includes(r))) continue;
        // RKE's per-host names ({host}): any of them on this node is the service's file.
        const pattern = templatePattern(fillPath(spec.cert, { dataDir }));
        const onDisk = reports.filter((r) => r.service === entry.name && pattern.test(r.path) && r.serial);
        if (onDisk.length === 0) continue; // not on this node (an optional cert-dir pair): the component serves its own
        for (const served of spec.servedOn) {
          const key = `${entry.name}:${served.port}`;
          if (seen.has(key)) continue;
          seen.add(key);
          try {
            const { address, certificate } = await servedCertificate(this.o.addresses!, served);
            const labels = { node: this.o.nodeName, service: entry.name, endpoint: `${address}:${served.port}` };
            this.record(labels, { service: entry.name, endpoint: labels.endpoint, notAfter: new Date(certificate.validTo).toISOString() }, now, out);
            const stale = !onDisk.some((r) => r.serial === serialOf(certificate));
            certificateServedStale.set(labels, stale ? 1 : 0);
            out.endpoints++;
            if (stale) out.stale.push(`${entry.name} ${labels.endpoint}`);
          } catch (e) {
            // Down or refusing: counted, and said once per scan; the next scan tries again.
            certificateReadErrorsTotal.inc({ node: this.o.nodeName, service: entry.name, endpoint: `:${served.port}` });
            out.errors++;
            out.unreadable.push(`service ${entry.name} :${served.port}: ${(e as Error).message}`);
            this.o.log.warn({ service: entry.name, port: served.port, err: (e as Error).message }, 'could not read the certificate an endpoint serves');
          }
        }
      }
    }
  }

  /** Scans now and then every `intervalMs`; a failed scan is logged and tried again at the next one. */
  start(intervalMs: number): void {
    this.periodic.start(intervalMs);
  }

  /** A scan out of schedule: after a rotation, so the inventory (and a policy reading it) shows the new certificates. */
  scanSoon(): void {
    this.changed = true;
    this.periodic.soon();
  }

  stop(): Promise<void> {
    return this.periodic.stop();
  }
}
