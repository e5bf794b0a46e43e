// Writes the node's CertificateInventory (src/api/certificateinventory.ts) from
// an inventory scan: one object per node, named after it, written whole. Only
// when something a person would read changed, or a day after the last write
// (writtenAt then says the agent is alive): a 5,000-node cluster that scans every
// 6 hours then costs a few hundred writes a day, not 20,000.
import { isDeepStrictEqual } from 'node:util';
import { API_VERSION, CERTIFICATE_INVENTORY, ROLE_ORDER } from '../api/constants.js';
import { INVENTORY_LIMITS, type CertificateInventory, type CertificateInventoryStatus } from '../api/certificateinventory.js';
import type { Distribution } from '../distributions/index.js';
import { isAlreadyExists, isConflict, type ClusterCustomResource, type CustomObject } from '../kube/client.js';
import type { InventoryItem, InventoryScan } from './inventory.js';

const DAY_MS = 86_400_000;

/** The object's status for a scan; `writtenAt` is the time of this write. Lists bounded, ordered for stable comparison. */
export function inventoryStatus(scan: InventoryScan, nodeName: string, distribution: Distribution, writtenAt: string): CertificateInventoryStatus {
  const where = (i: InventoryItem) => (i.path ? { path: i.path } : i.endpoint ? { endpoint: i.endpoint } : {});
  const earliestPerService = new Map<string, InventoryItem>();
  for (const i of scan.items) {
    const seen = earliestPerService.get(i.service);
    if (!seen || Date.parse(i.notAfter) < Date.parse(seen.notAfter)) earliestPerService.set(i.service, i);
  }
  const services = [...earliestPerService.values()].sort((a, b) => Date.parse(a.notAfter) - Date.parse(b.notAfter) || a.service.localeCompare(b.service));
  const first = services[0];
  const bounded = (list: readonly string[]) => (list.length <= INVENTORY_LIMITS.listed ? [...list] : [...list.slice(0, INVENTORY_LIMITS.listed - 1), `and ${list.length - INVENTORY_LIMITS.listed + 1} more`]);
  return {
    nodeName,
    distribution,
    roles: ROLE_ORDER.filter((r) => scan.roles.includes(r)).join(','),
    scannedAt: scan.at,
    writtenAt,
    files: scan.files,
    endpoints: scan.endpoints,
    expired: scan.expired,
    errors: scan.errors,
    ...(first
      ? { earliest: { service: first.service, notAfter: first.notAfter, daysLeft: Math.floor((Date.parse(first.notAfter) - Date.parse(scan.at)) / DAY_MS), ...where(first) } }
      : {}),
    services: services.slice(0, INVENTORY_LIMITS.services).map((i) => ({ name: i.service, notAfter: i.notAfter, ...where(i) })),
    staleEndpoints: bounded([...scan.stale].sort()),
    // Each reason cut to what the schema holds: one long message must not get the whole report refused.
    unreadable: bounded([...scan.unreadable].sort().map((u) => u.slice(0, INVENTORY_LIMITS.reasonLength))),
  };
}

/**
 * What a change is: everything but the times of the scan and the write, and the
 * days left (which move with the clock; the daily write keeps them current).
 */
function content(s: CertificateInventoryStatus | undefined): unknown {
  if (!s) return undefined;
  const { scannedAt, writtenAt, earliest, ...rest } = s;
  void scannedAt;
  void writtenAt;
  // Through JSON: absent and undefined fields are the same (the API server drops them).
  return JSON.parse(JSON.stringify({ ...rest, earliest: earliest && { ...earliest, daysLeft: undefined } })) as unknown;
}

export type PublishOutcome = 'created' | 'updated' | 'unchanged';

export class InventoryPublisher {
  constructor(
    private readonly o: {
      client: Pick<ClusterCustomResource<CertificateInventory & CustomObject>, 'tryGet' | 'create' | 'replace'>;
      nodeName: string;
      distribution: Distribution;
      now?: () => Date;
      /** A write at least this often even when nothing changed (default a day). */
      heartbeatMs?: number;
    },
  ) {}

  async publish(scan: InventoryScan): Promise<PublishOutcome> {
    // One retry: a 409 means another write of this node's (an agent being replaced) raced this one.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(scan);
      } catch (e) {
        if (attempt > 0 || !(isConflict(e) || isAlreadyExists(e))) throw e;
      }
    }
  }

  private async once(scan: InventoryScan): Promise<PublishOutcome> {
    const now = this.o.now?.() ?? new Date();
    const status = inventoryStatus(scan, this.o.nodeName, this.o.distribution, now.toISOString());
    const current = await this.o.client.tryGet(this.o.nodeName);
    if (!current) {
      await this.o.client.create({ apiVersion: API_VERSION, kind: CERTIFICATE_INVENTORY.kind, metadata: { name: this.o.nodeName }, status });
      return 'created';
    }
    const lastWrite = Date.parse(current.status?.writtenAt ?? '');
    const fresh = now.getTime() - lastWrite < (this.o.heartbeatMs ?? DAY_MS);
    // Compared as values: the API server returns the object's keys in its own order.
    // After a rotation on this node, always: a policy waits for a scannedAt later than the rotation.
    if (fresh && !scan.afterChange && isDeepStrictEqual(content(current.status), content(status))) return 'unchanged';
    await this.o.client.replace({ ...current, status });
    return 'updated';
  }
}
