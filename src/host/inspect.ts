// What `node check` reports: every certificate of the node the catalog knows,
// read-only, with a per-file error instead of stopping at the first bad file,
// and each file's status (OK, WARNING, EXPIRED, NOT YET VALID, ERROR; status.ts).
import { fillPath } from '../distributions/index.js';
import type { DistributionCatalog, NodeRole } from '../distributions/types.js';
import { readCertificateFile, serialOf } from '../pki/certfile.js';
import { describeSignedBy, signedByOf } from './issuer.js';
import { planAllOnlyFiles, planNode, type PlannedFile } from './plan.js';
import type { HostRoot } from './root.js';
import { certificateStatus, type CertificateStatus } from './status.js';

// How far ahead of NotAfter a file is WARNING unless told otherwise (--warn-within).
export const DEFAULT_WARN_WITHIN_MS = 30 * 86_400_000;

export interface CertificateReport {
  readonly service: string;
  readonly path: string;
  readonly subject?: string;
  readonly issuer?: string;
  readonly serial?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  readonly daysLeft?: number;
  readonly status: CertificateStatus;
  // Files made at start (the cert-dir pairs): 'self-signed' (the component's own,
  // before k3s PR #12285) or 'signed by <server-ca file>' (verified against it).
  readonly signedBy?: string;
  readonly error?: string;
}

const oneLine = (dn: string) => dn.split('\n').filter(Boolean).join(', ');

export async function inspectNode(
  catalog: DistributionCatalog,
  host: HostRoot,
  roles: readonly NodeRole[],
  dataDir: string,
  opts: { readonly now?: Date; readonly warnWithinMs?: number } = {},
): Promise<CertificateReport[]> {
  const now = opts.now ?? new Date();
  const warnWithinMs = opts.warnWithinMs ?? DEFAULT_WARN_WITHIN_MS;
  const vars = { dataDir };
  const reports: CertificateReport[] = [];
  const read = async (service: string, path: string, format: 'pem' | 'dynamiclistener-json', planned?: PlannedFile) => {
    try {
      const text = (await host.readFile(path)).toString('utf8');
      const file = readCertificateFile(text, path, format);
      const notBefore = new Date(file.leaf.validFrom);
      const notAfter = new Date(file.leaf.validTo);
      let signedBy: string | undefined;
      if (planned?.spec.renewal.kind === 'remove-to-regenerate') {
        const ca = planned.distributionCa;
        const caText = ca && (await host.exists(ca)) ? (await host.readFile(ca)).toString('utf8') : undefined;
        signedBy = describeSignedBy(signedByOf(text, path, format, caText, ca));
      }
      reports.push({
        service,
        path,
        subject: oneLine(file.leaf.subject),
        issuer: oneLine(file.leaf.issuer),
        serial: serialOf(file.leaf),
        notBefore: notBefore.toISOString(),
        notAfter: notAfter.toISOString(),
        daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000),
        status: certificateStatus({ notBefore, notAfter }, now, warnWithinMs),
        ...(signedBy ? { signedBy } : {}),
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      reports.push({
        service,
        path,
        status: certificateStatus(undefined, now, warnWithinMs),
        error: code === 'ENOENT' ? 'missing' : code === 'EACCES' ? 'not readable' : (e as Error).message,
      });
    }
  };
  for (const ca of catalog.cas) {
    if (ca.roles.some((r) => roles.includes(r))) await read('certificate-authority', fillPath(ca.files.cert, vars), 'pem');
  }
  for (const service of Object.keys(catalog.services)) {
    // Plan each service on its own so one missing file does not hide the others.
    try {
      for (const p of await planNode(catalog, host, { services: [service] }, roles, { dataDir })) {
        if (p.cert) await read(service, p.cert, p.spec.format, p);
      }
    } catch (e) {
      reports.push({ service, path: '', status: certificateStatus(undefined, now, warnWithinMs), error: (e as Error).message });
    }
  }
  // Files no single service covers (RKE's kube-apiserver-proxy-client) expire too.
  try {
    for (const p of await planAllOnlyFiles(catalog, host, roles, { dataDir })) if (p.cert) await read(p.service, p.cert, p.spec.format, p);
  } catch (e) {
    reports.push({ service: 'all', path: '', status: certificateStatus(undefined, now, warnWithinMs), error: (e as Error).message });
  }
  return reports;
}
