// Certificates someone else made (openssl here, never our encoder), renewed by
// the engine: each either renews correctly — same subject, same extensions
// byte for byte (apart from the key identifiers, which follow the new key),
// a new key of the same type and encoding, signed by the same CA as openssl
// verifies it — or is refused with a message that names the file.
import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ValidityProfile } from '../distributions/types.js';
import { loadSigningCa } from './ca.js';
import { parsePrivateKey } from './keys.js';
import { renewCertificate } from './renew.js';

const RKE2: ValidityProfile = { days: 365, notBefore: 'one-hour-back-clamped-to-ca' };

type KeySpec = 'ec:P-256' | 'ec:P-384' | 'rsa:2048' | 'rsa:4096';
interface Made {
  caCert: string;
  caKey: string;
  /** The leaf, and the intermediate after it when there is one. */
  leafCert: string;
  leafKey: string;
  /** What the leaf chains to: the root, or the intermediate. */
  issuerCert: string;
  issuerKey: string;
  dir: string;
}

function run(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Everything made by openssl, in a temp dir the caller removes. */
function make(o: { leafKey: KeySpec; keyFormat: 'traditional' | 'pkcs8'; ext?: string; intermediate?: boolean; caKey?: KeySpec }): Made {
  const dir = mkdtempSync(join(tmpdir(), 'foreign-'));
  const f = (n: string) => join(dir, n);
  const genkey = (spec: KeySpec, out: string, format: 'traditional' | 'pkcs8') => {
    const [kind, size] = spec.split(':') as [string, string];
    const pkcs8 = kind === 'ec' ? run(['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${size}`]) : run(['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${size}`]);
    // Traditional: SEC1 "EC PRIVATE KEY" / PKCS#1 "RSA PRIVATE KEY", as Go writes them.
    const text = format === 'pkcs8' ? pkcs8 : run(kind === 'ec' ? ['ec'] : ['rsa', '-traditional'], pkcs8);
    writeFileSync(f(out), text);
  };
  genkey(o.caKey ?? 'ec:P-256', 'ca.key', 'traditional');
  run(['req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=foreign-root-ca', '-days', '3650', '-out', f('ca.crt')]);
  let issuer = 'ca';
  if (o.intermediate) {
    genkey('ec:P-256', 'int.key', 'traditional');
    run(['req', '-new', '-key', f('int.key'), '-subj', '/CN=foreign-intermediate-ca', '-out', f('int.csr')]);
    writeFileSync(f('int.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
    run(['x509', '-req', '-in', f('int.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-set_serial', '0x77', '-days', '3000', '-extfile', f('int.ext'), '-out', f('int.crt')]);
    issuer = 'int';
  }
  genkey(o.leafKey, 'leaf.key', o.keyFormat);
  run(['req', '-new', '-key', f('leaf.key'), '-subj', '/O=system:masters/CN=foreign-leaf', '-out', f('leaf.csr')]);
  writeFileSync(f('leaf.ext'), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:kubernetes,IP:127.0.0.1\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n${o.ext ?? ''}`);
  run(['x509', '-req', '-in', f('leaf.csr'), '-CA', f(`${issuer}.crt`), '-CAkey', f(`${issuer}.key`), '-set_serial', '0x1234', '-days', '30', '-extfile', f('leaf.ext'), '-out', f('leaf.crt')]);
  const read = (n: string) => readFileSync(f(n), 'utf8');
  return {
    caCert: read('ca.crt'), caKey: read('ca.key'),
    leafCert: read('leaf.crt') + (o.intermediate ? read('int.crt') : ''), leafKey: read('leaf.key'),
    issuerCert: read(`${issuer}.crt`), issuerKey: read(`${issuer}.key`), dir,
  };
}

/** Runs `test` on what `make(o)` made, then removes it. */
async function withMade(o: Parameters<typeof make>[0], test: (m: Made) => Promise<void>): Promise<void> {
  const m = make(o);
  try {
    await test(m);
  } finally {
    rmSync(m.dir, { recursive: true, force: true });
  }
}

/** openssl's verdict on `leaf` against the root, with the intermediate as untrusted when there is one. */
function verify(m: Made, leafPem: string, intermediate: boolean): string {
  writeFileSync(join(m.dir, 'new.crt'), leafPem);
  const args = ['verify', '-CAfile', join(m.dir, 'ca.crt'), ...(intermediate ? ['-untrusted', join(m.dir, 'int.crt')] : []), join(m.dir, 'new.crt')];
  try {
    return run(args).trim().split(': ').pop()!;
  } catch (e) {
    return String((e as { stdout?: string; stderr?: string }).stdout ?? '') + String((e as { stderr?: string }).stderr ?? '');
  }
}

/** The leaf's extensions as openssl prints them, without the key identifiers (which follow the key). */
function extensionsText(pem: string): string {
  const text = run(['x509', '-noout', '-text'], pem.slice(0, pem.indexOf('-----END CERTIFICATE-----') + 26));
  const ext = text.slice(text.indexOf('X509v3 extensions:'), text.indexOf('Signature Algorithm:', text.indexOf('X509v3 extensions:')));
  return ext.replace(/X509v3 (Subject|Authority) Key Identifier:[^\n]*\n[^\n]*\n/g, '');
}

describe('renewing certificates made by openssl', () => {
  test.each<[string, KeySpec, 'traditional' | 'pkcs8', string]>([
    ['a P-256 leaf with a SEC1 key', 'ec:P-256', 'traditional', 'EC PRIVATE KEY'],
    ['a P-256 leaf with a PKCS#8 key', 'ec:P-256', 'pkcs8', 'PRIVATE KEY'],
    ['a P-384 leaf with a SEC1 key', 'ec:P-384', 'traditional', 'EC PRIVATE KEY'],
    ['an RSA-2048 leaf with a PKCS#1 key', 'rsa:2048', 'traditional', 'RSA PRIVATE KEY'],
    ['an RSA-4096 leaf with a PKCS#8 key', 'rsa:4096', 'pkcs8', 'PRIVATE KEY'],
  ])('%s: same subject and extensions, a new key of the same type and encoding, verified by openssl', async (_what, keySpec, keyFormat, pemType) => {
    await withMade({ leafKey: keySpec, keyFormat }, async (m) => {
      const ca = await loadSigningCa(m.issuerCert, 'ca.crt', m.issuerKey, 'ca.key');
      const r = await renewCertificate({ certText: m.leafCert, certFile: 'leaf.crt', keyText: m.leafKey, keyFile: 'leaf.key', ca, validity: RKE2, chained: false });
      const [before, after] = [new X509Certificate(m.leafCert), new X509Certificate(r.certPem)];
      expect(after.subject).toBe(before.subject);
      expect(after.serialNumber).not.toBe(before.serialNumber);
      expect(extensionsText(r.certPem)).toBe(extensionsText(m.leafCert));
      expect(r.keyPem.split('\n')[0]).toBe(`-----BEGIN ${pemType}-----`);
      const [oldKey, newKey] = [parsePrivateKey(m.leafKey, 'old'), parsePrivateKey(r.keyPem, 'new')];
      expect(newKey.keyObject.asymmetricKeyDetails).toEqual(oldKey.keyObject.asymmetricKeyDetails);
      expect(after.checkPrivateKey(newKey.keyObject)).toBe(true);
      expect(verify(m, r.certPem, false)).toBe('OK');
    });
  }, 60_000);

  test('a P-384 CA: the renewal is signed with ecdsa-with-SHA384, as Go signs with such a key, and openssl verifies it', async () => {
    await withMade({ leafKey: 'ec:P-256', keyFormat: 'traditional', caKey: 'ec:P-384' }, async (m) => {
      const ca = await loadSigningCa(m.issuerCert, 'ca.crt', m.issuerKey, 'ca.key');
      const r = await renewCertificate({ certText: m.leafCert, certFile: 'leaf.crt', keyText: m.leafKey, keyFile: 'leaf.key', ca, validity: RKE2, chained: false });
      expect(run(['x509', '-noout', '-text'], r.certPem)).toMatch(/Signature Algorithm: ecdsa-with-SHA384/);
      expect(verify(m, r.certPem, false)).toBe('OK');
    });
  }, 60_000);

  test('unusual extensions (certificate policies, a private extension) are carried over byte for byte', async () => {
    await withMade({ leafKey: 'ec:P-256', keyFormat: 'traditional', ext: 'certificatePolicies=1.2.3.4.5\n1.3.6.1.4.1.99999.1=DER:04:03:66:6F:6F\n' }, async (m) => {
      const ca = await loadSigningCa(m.issuerCert, 'ca.crt', m.issuerKey, 'ca.key');
      const r = await renewCertificate({ certText: m.leafCert, certFile: 'leaf.crt', keyText: m.leafKey, keyFile: 'leaf.key', ca, validity: RKE2, chained: false });
      const text = extensionsText(r.certPem);
      expect(text).toContain('X509v3 Certificate Policies');
      expect(text).toContain('1.3.6.1.4.1.99999.1');
      expect(text).toBe(extensionsText(m.leafCert));
      expect(verify(m, r.certPem, false)).toBe('OK');
    });
  }, 60_000);

  test('a leaf issued by an intermediate, with the intermediate after it: signed by the intermediate again, the chain kept', async () => {
    await withMade({ leafKey: 'ec:P-256', keyFormat: 'traditional', intermediate: true }, async (m) => {
      const ca = await loadSigningCa(m.issuerCert, 'intermediate.crt', m.issuerKey, 'intermediate.key');
      const r = await renewCertificate({ certText: m.leafCert, certFile: 'leaf.crt', keyText: m.leafKey, keyFile: 'leaf.key', ca, validity: RKE2, chained: true });
      expect(verify(m, r.certPem, true)).toBe('OK');
      expect(r.certPem.endsWith(m.issuerCert)).toBe(true);
      expect(new X509Certificate(r.certPem).issuer).toBe('CN=foreign-intermediate-ca');
    });
  }, 60_000);

  test('the same leaf offered the root instead of its intermediate: refused, naming the file, nothing issued', async () => {
    await withMade({ leafKey: 'ec:P-256', keyFormat: 'traditional', intermediate: true }, async (m) => {
      const root = await loadSigningCa(m.caCert, 'ca.crt', m.caKey, 'ca.key');
      await expect(renewCertificate({ certText: m.leafCert, certFile: 'leaf.crt', keyText: m.leafKey, keyFile: 'leaf.key', ca: root, validity: RKE2, chained: false })).rejects.toThrow(/^leaf\.crt: /);
    });
  }, 60_000);
});
