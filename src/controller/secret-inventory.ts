// The controller's part of the inventory: the TLS Secrets of the distribution's
// own that hold a certificate too (the catalog's clusterObjects; RKE2's
// kube-system/rke2-serving, where dynamiclistener keeps the supervisor's
// certificate and from which it restores it at a restart, rke2#4372). Agents
// cannot see them; the leader reads them at start and on a schedule and
// exports their notAfter under the same metric names as the agents' files,
// with `secret` (namespace/name) instead of `path`.
import type { V1Secret } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import { catalogFor, type Distribution } from '../distributions/index.js';
import { describeError } from '../kube/client.js';
import type { Logger } from '../observability/logger.js';
import type { CertrotatorMetrics } from '../observability/metrics.js';
import { parsePem } from '../pki/pem.js';
import { PeriodicScan } from '../observability/periodic.js';

export interface SecretInventoryOptions {
  /** undefined when the Secret does not exist. */
  readSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** The cluster's distribution now (from the nodes); undefined when it cannot be told. */
  distribution(): Distribution | undefined;
  metrics: Pick<CertrotatorMetrics, 'certificateNotAfter' | 'certificateExpired' | 'certificateReadErrorsTotal'>;
  log: Logger;
  now?: () => Date;
}

export interface SecretScan {
  read: string[];
  errors: string[];
}

export class SecretInventory {
  private readonly periodic = new PeriodicScan(
    () => this.scan(),
    (e: unknown) => this.o.log.error({ err: describeError(e) }, 'Secret inventory failed'),
  );
  /** Series this inventory set, so a Secret that went away (or a distribution that changed) leaves. */
  private series: { service: string; secret: string }[] = [];

  constructor(private readonly o: SecretInventoryOptions) {}

  async scan(): Promise<SecretScan> {
    const { certificateNotAfter, certificateExpired, certificateReadErrorsTotal } = this.o.metrics;
    for (const s of this.series) {
      certificateNotAfter.remove(s);
      certificateExpired.remove(s);
    }
    this.series = [];
    const out: SecretScan = { read: [], errors: [] };
    const distribution = this.o.distribution();
    if (!distribution) return out;
    const now = this.o.now?.() ?? new Date();
    for (const entry of Object.values(catalogFor(distribution).services)) {
      for (const obj of entry.clusterObjects ?? []) {
        if (obj.kind !== 'Secret' || !obj.tls) continue;
        const secret = `${obj.namespace}/${obj.name}`;
        const labels = { service: entry.name, secret };
        try {
          const s = await this.o.readSecret(obj.namespace, obj.name);
          // Not there (yet): dynamiclistener writes it once the supervisor serves; nothing to say.
          if (!s) continue;
          const notAfter = Date.parse(leafOf(s, secret).validTo);
          certificateNotAfter.set(labels, Math.floor(notAfter / 1000));
          certificateExpired.set(labels, notAfter <= now.getTime() ? 1 : 0);
          this.series.push({ service: entry.name, secret });
          out.read.push(secret);
        } catch (e) {
          certificateReadErrorsTotal.inc(labels);
          out.errors.push(secret);
          this.o.log.warn({ secret, err: describeError(e) }, 'could not read the certificate in a Secret');
        }
      }
    }
    return out;
  }

  /** Scans now and then every `intervalMs`; a failed scan is logged and tried again at the next one. */
  start(intervalMs: number): void {
    this.periodic.start(intervalMs);
  }

  stop(): Promise<void> {
    return this.periodic.stop();
  }
}

function leafOf(s: V1Secret, name: string): X509Certificate {
  const b64 = s.data?.['tls.crt'];
  if (!b64) throw new Error(`${name}: no tls.crt`);
  const first = parsePem(Buffer.from(b64, 'base64').toString('utf8'), `${name} tls.crt`).find((b) => b.type === 'CERTIFICATE');
  if (!first) throw new Error(`${name}: tls.crt holds no PEM certificate`);
  return new X509Certificate(first.der);
}
