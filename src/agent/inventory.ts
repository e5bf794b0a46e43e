// The agent's read-only inventory of its node's certificates: at start and on a
// schedule (default every 6 hours) it reads every certificate file of the
// catalog that is on this node, as `certrotator node check` does, and exports
// each file's notAfter, whether it has expired, and read errors, so a cluster's
// expiry is visible (and alertable) before anything is rotated — RKE2 renews
// only when its service starts, so nodes that never restart expire unnoticed
// (rancher/rke2#589). It never writes to the host.
import type { Logger } from 'pino';
import { catalogFor, type Distribution } from '../distributions/index.js';
import { inspectNode } from '../host/inspect.js';
import { detectRoles } from '../host/plan.js';
import { openHost } from '../host/rotation.js';
import type { CertrotatorMetrics } from '../observability/metrics.js';
import type { InvolvedObject } from '../kube/events.js';
import { ExpiryWarner } from './expiry-warnings.js';

export interface InventoryOptions {
  nodeName: string;
  distribution: Distribution;
  hostRoot: string;
  /** Relative to the host root; the catalog's default when absent. */
  dataDir?: string;
  metrics: Pick<CertrotatorMetrics, 'certificateNotAfter' | 'certificateExpired' | 'certificateReadErrorsTotal'>;
  log: Logger;
  /** Where the Node's expiry Warning Events go (the agent's EventRecorder); without it, none. */
  events?: { warning(obj: InvolvedObject, reason: string, message: string): void };
  now?: () => Date;
}

export interface InventoryScan {
  files: number;
  expired: number;
  errors: number;
  /** The earliest notAfter found, with its file. */
  earliest?: { path: string; notAfter: string };
}

export class NodeInventory {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<unknown> | undefined;
  private readonly warner: ExpiryWarner | undefined;

  constructor(private readonly o: InventoryOptions) {
    // uid = the node's name, as the kubelet sets it on Node Events, so `kubectl describe node` shows them.
    const node: InvolvedObject = { apiVersion: 'v1', kind: 'Node', metadata: { name: o.nodeName, uid: o.nodeName } };
    this.warner = o.events && new ExpiryWarner((w) => o.events!.warning(node, w.reason, w.message));
  }

  /** Reads every certificate of this node once and replaces the node's series with what it found. */
  async scan(): Promise<InventoryScan> {
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
    const out: InventoryScan = { files: reports.length, expired: 0, errors: 0 };
    for (const r of reports) {
      // A service whose files cannot be planned (one missing) is one error without a path, as `node check` reports it.
      const labels = { node: this.o.nodeName, service: r.service, path: r.path ? `/${r.path}` : '' };
      if (r.error !== undefined || !r.notAfter) {
        certificateReadErrorsTotal.inc(labels);
        out.errors++;
        continue;
      }
      const notAfter = Date.parse(r.notAfter);
      certificateNotAfter.set(labels, Math.floor(notAfter / 1000));
      const expired = notAfter <= now.getTime();
      certificateExpired.set(labels, expired ? 1 : 0);
      if (expired) out.expired++;
      if (!out.earliest || notAfter < Date.parse(out.earliest.notAfter)) out.earliest = { path: labels.path, notAfter: r.notAfter };
    }
    const warned = this.warner?.warn(reports, now) ?? 0;
    this.o.log.info({ roles, ...out, warned }, 'certificate inventory of this node');
    return out;
  }

  /** Scans now and then every `intervalMs`; a failed scan is logged and tried again at the next one. */
  start(intervalMs: number): void {
    const once = (): void => {
      if (this.running) return; // one scan at a time
      this.running = this.scan()
        .catch((e: unknown) => this.o.log.error({ err: (e as Error).message }, 'certificate inventory failed'))
        .finally(() => (this.running = undefined));
    };
    once();
    this.timer = setInterval(once, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
