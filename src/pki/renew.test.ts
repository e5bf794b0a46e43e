import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyAlgorithm, KeyEncoding, ValidityProfile } from '../distributions/types.js';
import { caFromMaterial, createCa, issueLeaf } from '../simulation/issue.js';
import { CertificateFileError } from './errors.js';
import { encodePrivateKey, generateEncodedKeyPair, generateKeyPair, parsePrivateKey } from './keys.js';
import { readCertificateFile } from './certfile.js';
import { encodePem, parsePem } from './pem.js';
import { randomSerialHex, renewCertificate, renewKeyOnly, signCertificate, validityWindow } from './renew.js';
import { authorityKeyIdentifierExtension, certificateFields, keyAlgorithmOfSpki, keyIdentifierOf, subjectKeyIdentifierExtension } from './tbs.js';
import { x509 } from './x509.js';
import { loadSigningCa } from './ca.js';
import { opensslVerify, opensslWith } from '../../test/secrets/webhook-pki.js';

const P256: KeyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' };
const RSA: KeyAlgorithm = { name: 'RSA', modulusLength: 2048 };
const RKE2: ValidityProfile = { days: 365, notBefore: 'one-hour-back-clamped-to-ca' };
const RKE: ValidityProfile = { days: 3650, notBefore: 'ca-not-before' };

describe('validityWindow', () => {
  const now = new Date('2030-06-01T12:00:00.500Z');
  const caFrom = (notBefore: string, notAfter = '2040-01-01T00:00:00Z') => ({ certFile: 'tls/server-ca.crt', notBefore: new Date(notBefore), notAfter: new Date(notAfter) });
  test('RKE2: one hour back, whole seconds, 365 days from that NotBefore (dynamiclistener NewSignedCert)', () => {
    const w = validityWindow(RKE2, caFrom('2020-01-01T00:00:00Z'), now);
    expect(w.notBefore.toISOString()).toBe('2030-06-01T11:00:00.000Z');
    expect(w.notAfter.toISOString()).toBe('2031-06-01T11:00:00.000Z');
    expect(w.clampedToCa).toBe(false);
  });
  test('RKE2: never before the CA', () => {
    const ca = caFrom('2030-06-01T11:30:00Z');
    expect(validityWindow(RKE2, ca, now).notBefore).toEqual(ca.notBefore);
    expect(validityWindow(RKE2, ca, now).notAfter.toISOString()).toBe('2031-06-01T11:30:00.000Z');
  });
  test('RKE: the CA NotBefore and ten years', () => {
    const ca = caFrom('2021-03-04T05:06:07Z', '2050-01-01T00:00:00Z');
    const w = validityWindow(RKE, ca, now);
    expect(w.notBefore).toEqual(ca.notBefore);
    // 3650 days, as Go's 24h*365*10: three leap days make it May 29.
    expect(w.notAfter.toISOString()).toBe('2040-05-29T12:00:00.000Z');
  });
  test.each([
    ['RKE2, CA expires in 100 days', RKE2, '2030-09-09T00:00:00Z'],
    ['RKE, CA expires before the ten years', RKE, '2031-03-04T05:06:07Z'],
    ['the CA expires this very second', RKE2, '2030-06-01T12:00:00Z'],
  ])('%s: notAfter is the CA\'s, and says so', (_name, profile, caEnd) => {
    const w = validityWindow(profile, caFrom('2021-03-04T05:06:07Z', caEnd), new Date('2030-06-01T11:59:59Z'));
    expect(w.notAfter.toISOString()).toBe(new Date(caEnd).toISOString());
    expect(w.clampedToCa).toBe(true);
  });
  test('an expired CA signs nothing: the error names the CA file, the date and what to do', () => {
    expect(() => validityWindow(RKE2, caFrom('2020-01-01T00:00:00Z', '2030-05-31T00:00:00Z'), now)).toThrow(
      /^tls\/server-ca\.crt: the CA expired on 2030-05-31T00:00:00\.000Z: .*Rotate the CA first/,
    );
  });
  test('a CA that is not valid yet (clock behind) signs nothing', () => {
    expect(() => validityWindow(RKE2, caFrom('2030-06-02T00:00:00Z'), now)).toThrow(/^tls\/server-ca\.crt: the CA is not valid until 2030-06-02T00:00:00\.000Z: .*clock/);
  });
});

test('serials are positive, below 2^63 and minimally encoded', () => {
  for (let i = 0; i < 2000; i++) {
    const hex = randomSerialHex();
    expect(hex.length % 2).toBe(0);
    expect(BigInt(`0x${hex}`)).toBeGreaterThan(0n);
    expect(BigInt(`0x${hex}`)).toBeLessThan(2n ** 63n);
    expect(hex.startsWith('00')).toBe(false);
  }
});

describe.each([
  ['ECDSA P-256, SEC1 key, chained (RKE2)', P256, 'sec1' as KeyEncoding, RKE2, true, 'EC PRIVATE KEY'],
  ['ECDSA P-256, PKCS#8 key', P256, 'pkcs8' as KeyEncoding, RKE2, true, 'PRIVATE KEY'],
  ['RSA-2048, PKCS#1 key, leaf only (RKE)', RSA, 'pkcs1' as KeyEncoding, RKE, false, 'RSA PRIVATE KEY'],
])('renewCertificate: %s', (_name, algorithm, encoding, validity, chained, keyType) => {
  test('keeps identity, usages and key type; new key, serial and validity; chains to the CA', async () => {
    const ca = await caFromMaterial(await createCa('kube-ca', algorithm, encoding, new Date(Date.now() - 86_400_000)));
    const old = await issueLeaf({
      template: { cn: 'kube-apiserver', o: ['system:masters'], dns: ['kubernetes', 'localhost'], ips: ['127.0.0.1', '10.43.0.1'], eku: ['serverAuth', 'clientAuth'] },
      ca,
      validity,
      algorithm,
      encoding,
      chained,
    });
    const renewed = await renewCertificate({ certText: old.certPem, certFile: 'a.crt', keyText: old.keyPem, keyFile: 'a.key', ca, validity, chained });
    const [o, r] = [new X509Certificate(old.certPem), new X509Certificate(renewed.certPem)];
    expect(r.subject).toBe(o.subject);
    expect(r.subjectAltName).toBe(o.subjectAltName);
    expect(r.keyUsage).toEqual(o.keyUsage);
    expect(r.ca).toBe(false);
    expect(r.publicKey.asymmetricKeyType).toBe(o.publicKey.asymmetricKeyType);
    expect(r.publicKey.asymmetricKeyDetails).toEqual(o.publicKey.asymmetricKeyDetails);
    expect(r.serialNumber).not.toBe(o.serialNumber);
    expect(r.publicKey.export({ type: 'spki', format: 'der' })).not.toEqual(o.publicKey.export({ type: 'spki', format: 'der' }));
    expect(r.verify(ca.cert.publicKey)).toBe(true);
    expect(r.checkPrivateKey(parsePrivateKey(renewed.keyPem, 'a.key').keyObject)).toBe(true);
    expect(renewed.keyPem.startsWith(`-----BEGIN ${keyType}-----\n`)).toBe(true);
    expect(parsePem(renewed.certPem, 'a.crt')).toHaveLength(chained ? 2 : 1);
    expect(renewed.oldSerial).toBe(o.serialNumber.replace(/^0+/, ''));
  }, 30_000);
});

describe('renewCertificate refuses', () => {
  test('a certificate from another CA with the same name, naming the file', async () => {
    const ca = await caFromMaterial(await createCa('rke2-client-ca@1', P256, 'sec1'));
    const impostor = await caFromMaterial(await createCa('rke2-client-ca@1', P256, 'sec1'));
    const leaf = await issueLeaf({ template: { cn: 'system:admin', eku: ['clientAuth'] }, ca: impostor, validity: RKE2, algorithm: P256, encoding: 'sec1', chained: true });
    await expect(renewCertificate({ certText: leaf.certPem, certFile: 'tls/client-admin.crt', keyText: leaf.keyPem, keyFile: 'k', ca, validity: RKE2, chained: true })).rejects.toThrow(
      new CertificateFileError('tls/client-admin.crt', 'is not signed by the CA ca.crt (issuer "CN=rke2-client-ca@1")'),
    );
  });

  test('a key that belongs to another certificate', async () => {
    const ca = await caFromMaterial(await createCa('c', P256, 'sec1'));
    const a = await issueLeaf({ template: { cn: 'a', eku: ['clientAuth'] }, ca, validity: RKE2, algorithm: P256, encoding: 'sec1', chained: true });
    const b = await issueLeaf({ template: { cn: 'b', eku: ['clientAuth'] }, ca, validity: RKE2, algorithm: P256, encoding: 'sec1', chained: true });
    await expect(renewCertificate({ certText: a.certPem, certFile: 'a.crt', keyText: b.keyPem, keyFile: 'a.key', ca, validity: RKE2, chained: true })).rejects.toThrow(
      'a.key: private key does not match certificate a.crt',
    );
  });

  test('a CA whose key is not its own', async () => {
    const one = await createCa('one', P256, 'sec1');
    const two = await createCa('two', P256, 'sec1');
    await expect(loadSigningCa(one.certPem, 'ca.crt', two.keyPem, 'ca.key')).rejects.toThrow('ca.key: private key does not match CA certificate ca.crt');
  });

  test('a leaf used as a CA', async () => {
    const ca = await caFromMaterial(await createCa('c', P256, 'sec1'));
    const leaf = await issueLeaf({ template: { cn: 'x', eku: ['clientAuth'] }, ca, validity: RKE2, algorithm: P256, encoding: 'sec1', chained: false });
    await expect(loadSigningCa(leaf.certPem, 'leaf.crt', leaf.keyPem, 'leaf.key')).rejects.toThrow('leaf.crt: is not a CA certificate');
  });
});

test('renewKeyOnly makes a different key of the same type and encoding', async () => {
  const ca = await createCa('c', P256, 'sec1');
  const fresh = await renewKeyOnly(ca.keyPem, 'serving-kubelet.key');
  expect(fresh).not.toBe(ca.keyPem);
  expect(fresh.split('\n')[0]).toBe('-----BEGIN EC PRIVATE KEY-----');
  expect(parsePrivateKey(fresh, 'k').algorithm).toEqual(P256);
});

describe('renewCertificate copies the old certificate byte for byte where it should', () => {
  const PRIVATE_EXTENSION_OID = Buffer.from('060a2b060104018483670101', 'hex'); // 1.3.6.1.4.1.99999.1.1
  const privateExtension = Buffer.concat([Buffer.from('3012', 'hex'), PRIVATE_EXTENSION_OID, Buffer.from('04040c026869', 'hex')]);

  async function oldCertificate(algorithm: KeyAlgorithm, critical: boolean) {
    const ca = await caFromMaterial(await createCa('kube-ca', algorithm, 'pkcs8', new Date(Date.now() - 600_000)));
    const keys = await generateKeyPair(algorithm);
    const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
    const subject = new Uint8Array(new x509.Name([{ O: ['system:nodes'] }, { CN: ['system:node:n1'] }]).toArrayBuffer());
    const extensions = [
      new Uint8Array(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true).rawData),
      subjectKeyIdentifierExtension(keyIdentifierOf(spki), critical),
      privateExtension,
      authorityKeyIdentifierExtension(ca.subjectKeyIdBytes!, critical),
      new Uint8Array(new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'n1' }, { type: 'ip', value: '10.0.0.1' }]).rawData),
    ];
    const { der } = await signCertificate({ subject, extensions, subjectPublicKeyInfo: spki, ca, notBefore: ca.notBefore, notAfter: new Date(Date.now() + 86_400_000) });
    return { ca, certPem: encodePem('CERTIFICATE', der), keyPem: encodePrivateKey(keys, 'pkcs8') };
  }

  test.each([
    ['P-256, non-critical key identifiers', P256, false],
    ['RSA-2048, critical key identifiers', RSA, true],
  ])('%s: subject and other extensions identical, SKI/AKI recomputed with criticality kept', async (_n, algorithm, critical) => {
    const { ca, certPem, keyPem } = await oldCertificate(algorithm, critical);
    const renewed = await renewCertificate({ certText: certPem, certFile: 'a.crt', keyText: keyPem, keyFile: 'a.key', ca, validity: RKE2, chained: false });
    const [o, r] = [certificateFields(parsePem(certPem, 'o')[0]!.der), certificateFields(parsePem(renewed.certPem, 'r')[0]!.der)];
    expect(Buffer.from(r.subject)).toEqual(Buffer.from(o.subject));
    expect(Buffer.from(r.issuer)).toEqual(Buffer.from(ca.subjectDer));
    expect(r.extensions).toHaveLength(5);
    for (const i of [0, 2, 4]) expect(Buffer.from(r.extensions[i]!.der)).toEqual(Buffer.from(o.extensions[i]!.der));
    expect(Buffer.from(r.extensions[2]!.der)).toEqual(privateExtension);
    expect(Buffer.from(r.extensions[1]!.der)).toEqual(subjectKeyIdentifierExtension(keyIdentifierOf(r.subjectPublicKeyInfo), critical));
    expect(Buffer.from(r.extensions[3]!.der)).toEqual(authorityKeyIdentifierExtension(ca.subjectKeyIdBytes!, critical));
    expect(Buffer.from(r.extensions[1]!.der)).not.toEqual(Buffer.from(o.extensions[1]!.der));
    // openssl agrees: key identifiers line up, chains to the unchanged CA (openssl
    // verify refuses critical SKI/AKI as unhandled critical extensions, as it should).
    const text = opensslWith(['x509', '-noout', '-text'], renewed.certPem);
    expect(text).toContain(algorithm.name === 'ECDSA' ? 'Signature Algorithm: ecdsa-with-SHA256' : 'Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toContain(`X509v3 Subject Key Identifier: ${critical ? 'critical' : ''}`.trim());
    expect(text.replace(/\s+/g, ' ')).toContain(`X509v3 Authority Key Identifier: ${critical ? 'critical ' : ''}${ca.subjectKeyId!.toUpperCase().match(/../g)!.join(':')}`);
    if (!critical) expect(opensslVerify(ca.cert.toString(), renewed.certPem)).toBe('OK');
    expect(new X509Certificate(renewed.certPem).verify(ca.cert.publicKey)).toBe(true);
  }, 30_000);

  test('the serial is positive, at most 63 bits, minimally encoded and fresh every time', async () => {
    const { ca, certPem, keyPem } = await oldCertificate(P256, false);
    const serials = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const renewed = await renewCertificate({ certText: certPem, certFile: 'a.crt', keyText: keyPem, keyFile: 'a.key', ca, validity: RKE2, chained: false });
      const tbs = certificateFields(parsePem(renewed.certPem, 'r')[0]!.der).tbs;
      // tbs: SEQUENCE header (30 82 LL LL), [0] version (a0 03 02 01 02), then the serial INTEGER.
      const at = 4 + 5;
      expect(tbs[at]).toBe(0x02);
      const len = tbs[at + 1]!;
      const body = Buffer.from(tbs.subarray(at + 2, at + 2 + len));
      expect(len).toBeLessThanOrEqual(8);
      expect(body[0]! & 0x80).toBe(0);
      if (len > 1) expect(body[0] === 0 && (body[1]! & 0x80) === 0).toBe(false);
      expect(body.toString('hex').toUpperCase().replace(/^0+(?=.)/, '')).toBe(renewed.serial);
      expect(new X509Certificate(renewed.certPem).serialNumber.replace(/^0+(?=.)/, '')).toBe(renewed.serial);
      serials.add(renewed.serial);
    }
    expect(serials.size).toBe(64);
  }, 30_000);

  test('NotBefore one hour back is clamped to a CA made ten minutes ago', async () => {
    const { ca, certPem, keyPem } = await oldCertificate(P256, false);
    const renewed = await renewCertificate({ certText: certPem, certFile: 'a.crt', keyText: keyPem, keyFile: 'a.key', ca, validity: RKE2, chained: false });
    expect(renewed.notBefore).toEqual(ca.notBefore);
    expect(new Date(new X509Certificate(renewed.certPem).validFrom)).toEqual(ca.notBefore);
    expect(new Date(new X509Certificate(renewed.certPem).validTo)).toEqual(renewed.notAfter);
  });

  test('a certificate without extensions stays without (v1)', async () => {
    const ca = await caFromMaterial(await createCa('kube-ca', P256, 'sec1'));
    const keys = await generateKeyPair(P256);
    const subject = new Uint8Array(new x509.Name([{ CN: ['bare'] }]).toArrayBuffer());
    const { der } = await signCertificate({ subject, extensions: [], subjectPublicKeyInfo: keys.publicKey.export({ type: 'spki', format: 'der' }), ca, notBefore: ca.notBefore, notAfter: new Date(Date.now() + 86_400_000) });
    const renewed = await renewCertificate({ certText: encodePem('CERTIFICATE', der), certFile: 'a.crt', keyText: encodePrivateKey(keys, 'sec1'), keyFile: 'a.key', ca, validity: RKE2, chained: false });
    const r = new X509Certificate(renewed.certPem);
    expect(r.subject).toBe('CN=bare');
    expect(certificateFields(r.raw).extensions).toHaveLength(0);
    expect(opensslWith(['x509', '-noout', '-text'], renewed.certPem)).toContain('Version: 1 (0x0)');
    expect(opensslVerify(ca.cert.toString(), renewed.certPem)).toBe('OK');
  });

  test('trace marks the three synchronous sections in order', async () => {
    const { ca, certPem, keyPem } = await oldCertificate(P256, false);
    const seen: string[] = [];
    await renewCertificate({ certText: certPem, certFile: 'a.crt', keyText: keyPem, keyFile: 'a.key', ca, validity: RKE2, chained: false, trace: (s, edge) => seen.push(`${s} ${edge}`) });
    expect(seen).toEqual(['check start', 'check end', 'build start', 'build end', 'finish start', 'finish end']);
  });

  test('a corrupt key (valid base64, not a key) is refused naming the file', async () => {
    const { ca, certPem } = await oldCertificate(P256, false);
    const bogus = encodePem('EC PRIVATE KEY', Buffer.from('3003020101', 'hex'));
    await expect(renewCertificate({ certText: certPem, certFile: 'a.crt', keyText: bogus, keyFile: 'a.key', ca, validity: RKE2, chained: false })).rejects.toThrow(
      new CertificateFileError('a.key', 'corrupt EC PRIVATE KEY: cannot be parsed'),
    );
  });
});

// A CA and a leaf made by openssl, not by our code: the CA is valid for `caDays`.
function opensslCaAndLeaf(caDays: number): { caCert: string; caKey: string; leafCert: string; leafKey: string } {
  const dir = mkdtempSync(join(tmpdir(), 'renew-ca-'));
  try {
    const f = (n: string) => join(dir, n);
    const run = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key')]);
    run(['req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=short-lived-ca', '-days', String(caDays), '-out', f('ca.crt')]);
    run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('leaf.key')]);
    run(['req', '-new', '-key', f('leaf.key'), '-subj', '/CN=kube-apiserver', '-out', f('leaf.csr')]);
    writeFileSync(f('ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:kubernetes,IP:127.0.0.1\n');
    run(['x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-set_serial', '0x1234', '-days', '30', '-extfile', f('ext'), '-out', f('leaf.crt')]);
    const read = (n: string) => execFileSync('cat', [f(n)], { encoding: 'utf8' });
    return { caCert: read('ca.crt'), caKey: read('ca.key'), leafCert: read('leaf.crt'), leafKey: read('leaf.key') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the CA bounds what it signs (CA and leaf made by openssl)', () => {
  test("a CA that expires before the profile's 365 days: the new leaf ends with the CA, openssl verifies it, and the result says it was clamped", async () => {
    const m = opensslCaAndLeaf(100);
    const ca = await loadSigningCa(m.caCert, 'tls/server-ca.crt', m.caKey, 'tls/server-ca.key');
    const renewed = await renewCertificate({ certText: m.leafCert, certFile: 'tls/serving.crt', keyText: m.leafKey, keyFile: 'tls/serving.key', ca, validity: RKE2, chained: false });
    expect(renewed.clampedToCa).toBe(true);
    const enddate = (pem: string) => opensslWith(['x509', '-noout', '-enddate'], pem).trim();
    expect(enddate(renewed.certPem)).toBe(enddate(m.caCert));
    expect(opensslVerify(m.caCert, renewed.certPem)).toBe('OK');
  });

  test('a CA valid for longer than the profile: not clamped', async () => {
    const m = opensslCaAndLeaf(3650);
    const ca = await loadSigningCa(m.caCert, 'tls/server-ca.crt', m.caKey, 'tls/server-ca.key');
    const renewed = await renewCertificate({ certText: m.leafCert, certFile: 'tls/serving.crt', keyText: m.leafKey, keyFile: 'tls/serving.key', ca, validity: RKE2, chained: false });
    expect(renewed.clampedToCa).toBe(false);
    expect(renewed.notAfter.getTime() - Date.now()).toBeGreaterThan(364 * 86_400_000);
  });

  test('an expired CA (200 days on, for a 100-day CA): refused, naming the CA file', async () => {
    const m = opensslCaAndLeaf(100);
    const ca = await loadSigningCa(m.caCert, 'tls/server-ca.crt', m.caKey, 'tls/server-ca.key');
    const later = new Date(Date.now() + 200 * 86_400_000);
    await expect(
      renewCertificate({ certText: m.leafCert, certFile: 'tls/serving.crt', keyText: m.leafKey, keyFile: 'tls/serving.key', ca, validity: RKE2, chained: false, now: later }),
    ).rejects.toThrow(/^tls\/server-ca\.crt: the CA expired on /);
  });
});


describe('what a renewal does not redo', () => {
  test.each([
    [P256, 'sec1' as KeyEncoding],
    [P256, 'pkcs8' as KeyEncoding],
    [RSA, 'pkcs1' as KeyEncoding],
    [RSA, 'pkcs8' as KeyEncoding],
  ])('keys generated encoded on the threadpool are Go-style PEM of the right type (%o, %s)', async (algorithm, encoding) => {
    const keys = await generateEncodedKeyPair(algorithm, encoding);
    const [block] = parsePem(keys.privateKeyPem, 'k');
    expect(encodePem(block!.type, block!.der)).toBe(keys.privateKeyPem);
    const loaded = parsePrivateKey(keys.privateKeyPem, 'k');
    expect(loaded.encoding).toBe(encoding);
    expect(loaded.algorithm).toEqual(algorithm);
    expect(createPublicKey(loaded.keyObject).export({ type: 'spki', format: 'der' })).toEqual(keys.spki);
    expect(keyAlgorithmOfSpki(keys.spki)).toEqual(algorithm);
  }, 30_000);

  test('keyAlgorithmOfSpki knows P-256 and RSA-2048 only; the rest is left to OpenSSL to name', () => {
    const spki = (type: 'ec' | 'rsa' | 'ed25519', o: object) =>
      generateKeyPairSync(type as 'ec', o as { namedCurve: string }).publicKey.export({ type: 'spki', format: 'der' });
    expect(keyAlgorithmOfSpki(spki('ec', { namedCurve: 'P-384' }))).toBeUndefined();
    expect(keyAlgorithmOfSpki(spki('rsa', { modulusLength: 3072 }))).toBeUndefined();
    expect(keyAlgorithmOfSpki(spki('rsa', { modulusLength: 2040 }))).toBeUndefined();
    expect(keyAlgorithmOfSpki(spki('ed25519', {}))).toBeUndefined();
  });

  test('a chained .crt: the CA blocks are the CA as already parsed; any other chain block is still parsed and checked', async () => {
    const ca = await caFromMaterial(await createCa('kube-ca', P256, 'sec1'));
    const leaf = await issueLeaf({ template: { cn: 'x', eku: ['clientAuth'] }, ca, validity: RKE2, algorithm: P256, encoding: 'sec1', chained: true });
    const file = readCertificateFile(leaf.certPem, 'a.crt', 'pem', ca.chain);
    expect(file.chain).toHaveLength(1);
    expect(file.chain[0]).toBe(ca.cert);
    const other = await createCa('other', P256, 'sec1');
    expect(readCertificateFile(leaf.certPem + other.certPem, 'a.crt', 'pem', ca.chain).chain[1]).not.toBe(ca.cert);
    // Valid PEM and base64, not a certificate: refused, as without the CA's chain.
    const bogus = encodePem('CERTIFICATE', Buffer.from('3003020101', 'hex'));
    expect(() => readCertificateFile(leaf.certPem + bogus, 'a.crt', 'pem', ca.chain)).toThrow('a.crt: corrupt certificate in PEM block 3');
    await expect(renewCertificate({ certText: leaf.certPem + bogus, certFile: 'a.crt', keyText: leaf.keyPem, keyFile: 'a.key', ca, validity: RKE2, chained: true })).rejects.toThrow(
      'a.crt: corrupt certificate in PEM block 3',
    );
    // The leaf itself is never taken from the known list.
    expect(readCertificateFile(ca.cert.toString(), 'ca.crt', 'pem', ca.chain).leaf).not.toBe(ca.cert);
  });
});
