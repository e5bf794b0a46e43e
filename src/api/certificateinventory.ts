// CertificateInventory: one per node, named after it, written by that node's
// agent after its read-only inventory scan (src/agent/inventory.ts): the one
// place a person looks for "what expires first, where" across the cluster —
// `kubectl get certinv --sort-by=.status.earliest.notAfter`.
//
// Observed data only, written whole by one writer: no spec, and no status
// subresource, so a scan that changed something costs one write (not a create
// and then a status update). The agent writes only when the content changed or
// a day passed (status.writtenAt says the agent is alive), well under the one
// write per node per scan that a 5,000-node cluster can afford.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { DISTRIBUTIONS } from '../distributions/services.js';
import { API_VERSION, CERTIFICATE_INVENTORY } from './constants.js';
import { s, type Out } from './schema.js';

/** Bounds: a node has a few dozen files; endpoints and errors are capped with a count of the rest. */
export const INVENTORY_LIMITS = { services: 32, listed: 16, reasonLength: 1024 } as const;

const where = {
  path: s.string({ maxLength: 4096, description: 'The file, absolute on the node.' }).optional(),
  endpoint: s.string({ maxLength: 128, description: 'address:port where the certificate is served.' }).optional(),
};

export const inventoryServiceSchema = s.object({
  name: s.string({ maxLength: 63, description: 'The service (as in CertificateRotation spec.service).' }),
  notAfter: s.time('The earliest notAfter among its files and served certificates.'),
  ...where,
});

export const certificateInventoryStatusSchema = s.object({
  nodeName: s.string({ maxLength: 253 }),
  distribution: s.enum(DISTRIBUTIONS),
  roles: s.string({ maxLength: 64, description: 'The roles the agent found on the node, e.g. etcd,controlplane.' }),
  scannedAt: s.time('When the scan these numbers come from ran.'),
  writtenAt: s.time('When the agent last wrote this object: at least daily while it runs.'),
  files: s.int32({ minimum: 0, description: 'Certificate files read.' }),
  endpoints: s.int32({ minimum: 0, description: 'Served certificates read.' }),
  expired: s.int32({ minimum: 0, description: 'Files and served certificates past their notAfter.' }),
  errors: s.int32({ minimum: 0, description: 'Files and endpoints that could not be read.' }),
  earliest: s
    .object({ service: s.string({ maxLength: 63 }), notAfter: s.time(), daysLeft: s.int32({ description: 'Whole days from the scan to notAfter (negative: expired).' }), ...where })
    .describe('What expires first on this node.')
    .optional(),
  services: s.listMap(inventoryServiceSchema, 'name', { maxItems: INVENTORY_LIMITS.services }).describe('The earliest expiry per service.'),
  staleEndpoints: s
    .array(s.string({ maxLength: 192 }), { maxItems: INVENTORY_LIMITS.listed })
    .describe('service address:port serving a certificate that is none of its files on disk (renewed, not restarted); at most 16.'),
  unreadable: s
    .array(s.string({ maxLength: INVENTORY_LIMITS.reasonLength }), { maxItems: INVENTORY_LIMITS.listed })
    .describe('Files and endpoints that could not be read, with the reason; at most 16 (errors counts them all).'),
});

export type CertificateInventoryStatus = Out<typeof certificateInventoryStatusSchema>;

export interface CertificateInventory {
  apiVersion: typeof API_VERSION;
  kind: typeof CERTIFICATE_INVENTORY.kind;
  metadata: V1ObjectMeta;
  status?: CertificateInventoryStatus;
}
