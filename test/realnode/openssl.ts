// Certificates the stand-ins make with the openssl CLI, not with certrotator's
// own engine: what RKE2 itself would issue at start (agent certificates, the
// supervisor's listener certificate) must not come from the code under test.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LeafRequest {
  readonly cn: string;
  readonly o?: readonly string[];
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  readonly eku: readonly ('serverAuth' | 'clientAuth')[];
  readonly days?: number;
}

export interface Pair {
  readonly certPem: string;
  readonly keyPem: string;
}

// An ECDSA P-256 leaf (SEC1 key, as Go's MakeEllipticPrivateKeyPEM writes it),
// signed by the CA pair given, `.crt` = leaf followed by the CA (dynamiclistener's
// EncodeCertsPEM(cert, caCerts)).
export async function issueWithOpenssl(caCertFile: string, caKeyFile: string, req: LeafRequest): Promise<Pair> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'realnode-issue-'));
  try {
    const key = join(dir, 'k.pem');
    await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    const subj = `/${(req.o ?? []).map((o) => `O=${o}/`).join('')}CN=${req.cn}`;
    const sans = [...(req.dns ?? []).map((d) => `DNS:${d}`), ...(req.ips ?? []).map((i) => `IP:${i}`)];
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${req.eku.join(',')}`,
      ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
    ];
    await fs.writeFile(join(dir, 'ext'), ext.join('\n') + '\n');
    await run('openssl', ['req', '-new', '-key', key, '-subj', subj, '-out', join(dir, 'csr')]);
    await run('openssl', [
      'x509', '-req', '-in', join(dir, 'csr'), '-CA', caCertFile, '-CAkey', caKeyFile, '-set_serial', `0x${randomSerial()}`,
      '-days', String(req.days ?? 365), '-extfile', join(dir, 'ext'), '-out', join(dir, 'crt'),
    ]);
    const leaf = await fs.readFile(join(dir, 'crt'), 'utf8');
    const ca = await fs.readFile(caCertFile, 'utf8');
    return { certPem: leaf + ca, keyPem: await fs.readFile(key, 'utf8') };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

// dynamiclistener: a random 63-bit serial, as hex (16 digits).
export function randomSerial(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  b[0]! &= 0x7f;
  return Buffer.from(b).toString('hex');
}

export async function writePair(pair: Pair, certFile: string, keyFile: string, certMode = 0o644): Promise<void> {
  await fs.writeFile(keyFile, pair.keyPem, { mode: 0o600 });
  await fs.chmod(keyFile, 0o600);
  await fs.writeFile(certFile, pair.certPem, { mode: certMode });
}
