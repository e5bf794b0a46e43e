import { describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import type { KeyAlgorithm, KeyEncoding, ValidityProfile } from '../distributions/types.js';
import { caFromMaterial, createCa, issueLeaf } from '../simulation/issue.js';
import { CertificateFileError } from './errors.js';
import { parsePrivateKey } from './keys.js';
import { parsePem } from './pem.js';
import { randomSerialHex, renewCertificate, renewKeyOnly, validityWindow } from './renew.js';
import { loadSigningCa } from './ca.js';

const P256: KeyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' };
const RSA: KeyAlgorithm = { name: 'RSA', modulusLength: 2048 };
const RKE2: ValidityProfile = { days: 365, notBefore: 'one-hour-back-clamped-to-ca' };
const RKE: ValidityProfile = { days: 3650, notBefore: 'ca-not-before' };

describe('validityWindow', () => {
  const now = new Date('2030-06-01T12:00:00.500Z');
  test('RKE2: one hour back, whole seconds, 365 days on', () => {
    const w = validityWindow(RKE2, new Date('2020-01-01T00:00:00Z'), now);
    expect(w.notBefore.toISOString()).toBe('2030-06-01T11:00:00.000Z');
    expect(w.notAfter.toISOString()).toBe('2031-06-01T12:00:00.000Z');
  });
  test('RKE2: never before the CA', () => {
    const caStart = new Date('2030-06-01T11:30:00Z');
    expect(validityWindow(RKE2, caStart, now).notBefore).toEqual(caStart);
  });
  test('RKE: the CA NotBefore and ten years', () => {
    const caStart = new Date('2021-03-04T05:06:07Z');
    const w = validityWindow(RKE, caStart, now);
    expect(w.notBefore).toEqual(caStart);
    // 3650 days, as Go's 24h*365*10: three leap days make it May 29.
    expect(w.notAfter.toISOString()).toBe('2040-05-29T12:00:00.000Z');
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
