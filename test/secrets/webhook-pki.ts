// Webhook CAs and serving pairs made with the openssl CLI, not with
// certrotator's engine: the tests of Secret-backed certificates must judge
// certificates someone else issued, as the charts and projects that own real
// webhooks do.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pem {
  certPem: string;
  keyPem: string;
}

export interface CaRequest {
  cn: string;
  days?: number;
  /** Days before now the CA starts (to make one that is already expired, with days < back). */
  back?: number;
}

export interface ServingRequest {
  cn: string;
  dns: string[];
  days?: number;
  back?: number;
  key?: 'ec' | 'rsa';
  /** Leave out the key identifiers (OpenSSL 3 adds them), so only the signature tells which CA signed it. */
  noKeyIds?: boolean;
}

function inTemp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'webhook-pki-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const openssl = (args: string[]): void => {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};

function newKey(dir: string, kind: 'ec' | 'rsa'): string {
  const file = join(dir, 'key.pem');
  if (kind === 'ec') openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
  else openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file]);
  return file;
}

/** `openssl ca` takes YYYYMMDDHHMMSSZ; `x509 -req` cannot backdate in OpenSSL 3.0, which Debian ships. */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Signs `csr` with `openssl ca` from `back` days ago for `days` days, with the extensions given. */
function sign(dir: string, csr: string, signer: string[], ext: string, days: number, back: number): string {
  const start = new Date(Date.now() - back * 86_400_000);
  const end = new Date(start.getTime() + days * 86_400_000);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), `${randomBytes(8).toString('hex').replace(/^./, '1')}\n`);
  writeFileSync(join(dir, 'ext'), ext);
  writeFileSync(
    join(dir, 'ca.cnf'),
    ['[ca]', 'default_ca = test', '[test]', `database = ${join(dir, 'index.txt')}`, `new_certs_dir = ${dir}`, `serial = ${join(dir, 'serial')}`,
      'default_md = sha256', 'policy = anything', 'unique_subject = no', '[anything]', 'commonName = supplied', ''].join('\n'),
  );
  const out = join(dir, 'crt');
  openssl(['ca', '-batch', '-config', join(dir, 'ca.cnf'), ...signer, '-in', csr, '-notext', '-startdate', asn1Time(start), '-enddate', asn1Time(end), '-extfile', join(dir, 'ext'), '-out', out]);
  return readFileSync(out, 'utf8');
}

export function makeCa(req: CaRequest): Pem {
  return inTemp((dir) => {
    const key = newKey(dir, 'ec');
    openssl(['req', '-new', '-key', key, '-subj', `/CN=${req.cn}`, '-out', join(dir, 'csr')]);
    const ext = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n';
    const certPem = sign(dir, join(dir, 'csr'), ['-selfsign', '-keyfile', key], ext, req.days ?? 3650, req.back ?? 0);
    return { certPem, keyPem: readFileSync(key, 'utf8') };
  });
}

export function issueServing(ca: Pem, req: ServingRequest): Pem {
  return inTemp((dir) => {
    const key = newKey(dir, req.key ?? 'ec');
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    writeFileSync(join(dir, 'ca.key'), ca.keyPem, { mode: 0o600 });
    openssl(['req', '-new', '-key', key, '-subj', `/CN=${req.cn}`, '-out', join(dir, 'csr')]);
    const ext = `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${req.dns.map((d) => `DNS:${d}`).join(',')}\n${req.noKeyIds ? 'subjectKeyIdentifier=none\nauthorityKeyIdentifier=none\n' : ''}`;
    const certPem = sign(dir, join(dir, 'csr'), ['-cert', join(dir, 'ca.crt'), '-keyfile', join(dir, 'ca.key')], ext, req.days ?? 365, req.back ?? 0);
    return { certPem, keyPem: readFileSync(key, 'utf8') };
  });
}

export const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** `openssl <args>` with `input` on stdin; its stdout. */
export function opensslWith(args: string[], input: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8' });
}

/** What `openssl verify -CAfile` says of `certPem` (its first certificate) against `caPem`: "OK" or the error. */
export function opensslVerify(caPem: string, certPem: string): string {
  return inTemp((dir) => {
    writeFileSync(join(dir, 'ca.crt'), caPem);
    writeFileSync(join(dir, 'leaf.crt'), certPem);
    return execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'leaf.crt')], { encoding: 'utf8' }).trim().split(': ').pop()!;
  });
}
