// What `node check` reports: every certificate of the node the catalog knows,
// read-only, with a per-file error instead of stopping at the first bad file.
import { fillPath } from '../distributions/index.js';
import type { DistributionCatalog, NodeRole } from '../distributions/types.js';
import { readCertificateFile, serialOf } from '../pki/certfile.js';
import { describeSignedBy, signedByOf } from './issuer.js';
import { planNode, type PlannedFile } from './plan.js';
import type { HostRoot } from './root.js';

export interface CertificateReport {
  readonly service: string;
  readonly path: string;
  readonly subject?: string;
  readonly issuer?: string;
  readonly serial?: string;
  readonly notAfter?: string;
  readonly daysLeft?: number;
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
  now = new Date(),
): Promise<CertificateReport[]> {
  const vars = { dataDir };
  const reports: CertificateReport[] = [];
  const read = async (service: string, path: string, format: 'pem' | 'dynamiclistener-json', planned?: PlannedFile) => {
    try {
      const text = (await host.readFile(path)).toString('utf8');
      const file = readCertificateFile(text, path, format);
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
        notAfter: notAfter.toISOString(),
        daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000),
        ...(signedBy ? { signedBy } : {}),
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      reports.push({ service, path, error: code === 'ENOENT' ? 'missing' : code === 'EACCES' ? 'not readable' : (e as Error).message });
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
      reports.push({ service, path: '', error: (e as Error).message });
    }
  }
  return reports;
}
