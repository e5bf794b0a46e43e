// Makes a node's leaf certificates expired, as they are on the day a cluster that
// was powered off for a year is switched on again (rancher/rke2#8318): each leaf
// is re-signed by the CA that issued it with the same subject, key and
// extensions, and a validity that ended `daysAgo` days ago. Only openssl does it
// (`x509 -x509toreq -copy_extensions copyall`, then `ca -preserveDN` with
// explicit dates), never certrotator's engine, so the recovery under test renews
// certificates someone else made. CAs and other self-issued certificates, and
// files with no key next to them, are left as they are.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomSerial } from './openssl.js';

const run = promisify(execFile);

export interface CaFiles {
  readonly cert: string;
  readonly key: string;
}

const openssl = async (args: string[]): Promise<string> => (await run('openssl', args)).stdout.trim();
const subjectOf = (file: string): Promise<string> => openssl(['x509', '-in', file, '-noout', '-subject', '-nameopt', 'RFC2253']);
const issuerOf = async (file: string): Promise<string> => (await openssl(['x509', '-in', file, '-noout', '-issuer', '-nameopt', 'RFC2253'])).replace(/^issuer=/, 'subject=');

// openssl ca's date format (GeneralizedTime).
const asn1Time = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

async function pemFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await pemFiles(p)));
    else if (e.name.endsWith('.crt') || (e.name.endsWith('.pem') && !e.name.endsWith('-key.pem'))) out.push(p);
  }
  return out;
}

// The key beside a certificate: x.crt → x.key (RKE2), x.pem → x-key.pem (RKE).
const keyFileOf = (cert: string): string => (cert.endsWith('.crt') ? cert.replace(/\.crt$/, '.key') : cert.replace(/\.pem$/, '-key.pem'));

/**
 * Re-signs every leaf under `dirs` whose issuer is one of `cas` so that it expired
 * `daysAgo` days ago (valid for a year before that). Returns the files changed.
 */
export async function expireLeaves(dirs: readonly string[], cas: readonly CaFiles[], daysAgo: number): Promise<string[]> {
  const bySubject = new Map<string, CaFiles>();
  for (const ca of cas) bySubject.set(await subjectOf(ca.cert), ca);
  const caCerts = new Set(cas.map((c) => c.cert));
  const end = new Date(Date.now() - daysAgo * 86_400_000);
  const start = new Date(end.getTime() - 365 * 86_400_000);
  const work = await fs.mkdtemp(join(tmpdir(), 'realnode-expire-'));
  const changed: string[] = [];
  try {
    for (const dir of dirs) {
      for (const file of await pemFiles(dir)) {
        const key = keyFileOf(file);
        if (caCerts.has(file) || !(await fs.stat(key).catch(() => undefined))) continue;
        const issuer = await issuerOf(file);
        // A CA (each server keeps its own copy of the cluster's CAs) is self-issued.
        if (issuer === (await subjectOf(file))) continue;
        const ca = bySubject.get(issuer);
        if (!ca) continue;
        await resign(work, file, key, ca, start, end);
        changed.push(file);
      }
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
  return changed;
}

// Re-signs `file` (its key in `key`) with the same subject, key and extensions and
// the dates given: by `ca`, or by its own key when `ca` is undefined (a CA itself).
async function resign(work: string, file: string, key: string, ca: CaFiles | undefined, start: Date, end: Date): Promise<void> {
  const original = await fs.readFile(file, 'utf8');
  const blocks = original.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  const csr = join(work, 'req.csr');
  const out = join(work, 'new.crt');
  await fs.writeFile(join(work, 'index.txt'), '');
  await fs.writeFile(join(work, 'serial'), `${randomSerial()}\n`);
  await fs.writeFile(
    join(work, 'ca.cnf'),
    [
      '[ca]',
      'default_ca = resign',
      '[resign]',
      `database = ${join(work, 'index.txt')}`,
      `new_certs_dir = ${work}`,
      `serial = ${join(work, 'serial')}`,
      'default_md = sha256',
      'policy = anything',
      'copy_extensions = copyall',
      'unique_subject = no',
      '[anything]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  await openssl(['x509', '-x509toreq', '-in', file, '-signkey', key, '-copy_extensions', 'copyall', '-out', csr]);
  const signer = ca ? ['-cert', ca.cert, '-keyfile', ca.key] : ['-selfsign', '-keyfile', key];
  await openssl(['ca', '-batch', '-config', join(work, 'ca.cnf'), ...signer, '-in', csr, '-preserveDN', '-notext', '-startdate', asn1Time(start), '-enddate', asn1Time(end), '-out', out]);
  const leaf = await fs.readFile(out, 'utf8');
  // The rest of the file (the CA after the leaf, as RKE2 writes its .crt files) stays.
  const { mode } = await fs.stat(file);
  await fs.writeFile(file, leaf + blocks.slice(1).join(''), { mode });
  await fs.rm(join(work, 'index.txt.attr'), { force: true });
}

/** Re-issues a CA certificate with the same subject, key and extensions, valid from `start` to `end`. */
export async function redateCa(ca: CaFiles, start: Date, end: Date): Promise<void> {
  const work = await fs.mkdtemp(join(tmpdir(), 'realnode-redate-'));
  try {
    await resign(work, ca.cert, ca.key, undefined, start, end);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
