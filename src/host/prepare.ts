// The read-only half of a rotation: read and check every file in the plan and
// make all replacement material in memory. Any problem (a missing file, a wrong
// CA, a corrupt PEM, a CA key that does not match) is found here, before a single
// byte on the host changes.
import { X509Certificate } from 'node:crypto';
import { loadSigningCa, type SigningCa } from '../pki/ca.js';
import { readCertificateFile, serialOf } from '../pki/certfile.js';
import { CertificateFileError } from '../pki/errors.js';
import { renewCertificate, renewKeyOnly } from '../pki/renew.js';
import type { OwnerAndMode } from './journal.js';
import type { PlannedFile } from './plan.js';
import type { HostRoot } from './root.js';

export interface PreparedFile {
  readonly planned: PlannedFile;
  readonly oldSerial?: string;
  readonly newSerial?: string;
  readonly notAfter?: Date;
  readonly certPem?: string;
  readonly keyPem?: string;
  readonly certMeta?: OwnerAndMode;
  readonly keyMeta?: OwnerAndMode;
}

async function readText(host: HostRoot, path: string, what: string): Promise<string> {
  try {
    return (await host.readFile(path)).toString('utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'missing' : code === 'EACCES' ? 'not readable (permission denied)' : (e as Error).message;
    throw new CertificateFileError(path, `${reason} (${what})`);
  }
}

async function metaOf(host: HostRoot, path: string): Promise<OwnerAndMode> {
  const st = await host.stat(path);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

export async function prepareFiles(host: HostRoot, plan: readonly PlannedFile[], now: Date): Promise<PreparedFile[]> {
  const cas = new Map<string, Promise<SigningCa>>();
  const caFor = (p: PlannedFile): Promise<SigningCa> => {
    const ca = p.ca!;
    if (!cas.has(ca.cert)) {
      cas.set(
        ca.cert,
        (async () => {
          const certText = await readText(host, ca.cert, `CA certificate for ${p.id}`);
          const keyText = await readText(host, ca.key, `CA key needed to sign ${p.cert}`);
          return loadSigningCa(certText, ca.cert, keyText, ca.key);
        })(),
      );
    }
    return cas.get(ca.cert)!;
  };

  const out: PreparedFile[] = [];
  for (const p of plan) {
    const what = `service ${p.service}`;
    const certMeta = p.cert ? await metaOf(host, p.cert) : undefined;
    const keyMeta = p.key && (await host.exists(p.key)) ? await metaOf(host, p.key) : undefined;
    const base = { planned: p, ...(certMeta ? { certMeta } : {}), ...(keyMeta ? { keyMeta } : {}) };
    switch (p.spec.renewal.kind) {
      case 'sign': {
        const certText = await readText(host, p.cert!, what);
        const keyText = await readText(host, p.key!, what);
        const renewed = await renewCertificate({
          certText,
          certFile: p.cert!,
          keyText,
          keyFile: p.key!,
          ca: await caFor(p),
          validity: p.spec.validity,
          chained: p.spec.chained,
          now,
        });
        out.push({ ...base, oldSerial: renewed.oldSerial, newSerial: renewed.serial, notAfter: renewed.notAfter, certPem: renewed.certPem, keyPem: renewed.keyPem });
        break;
      }
      case 'new-key': {
        const keyPem = await renewKeyOnly(await readText(host, p.key!, what), p.key!);
        out.push({ ...base, keyPem });
        break;
      }
      case 'reissued-on-start':
      case 'trigger': {
        const file = readCertificateFile(await readText(host, p.cert!, what), p.cert!, p.spec.format);
        // Even when the distribution re-issues, a file that does not chain to its CA
        // means this node is not what the catalog describes: stop before touching it.
        const caCert = new X509Certificate(await readText(host, p.caCert!, `CA certificate for ${p.id}`));
        if (!file.leaf.verify(caCert.publicKey)) throw new CertificateFileError(p.cert!, `is not signed by the CA ${p.caCert}`);
        out.push({ ...base, oldSerial: serialOf(file.leaf) });
        break;
      }
      case 'remove-to-regenerate': {
        const file = readCertificateFile(await readText(host, p.cert!, what), p.cert!, p.spec.format);
        out.push({ ...base, oldSerial: serialOf(file.leaf) });
        break;
      }
    }
  }
  return out;
}
