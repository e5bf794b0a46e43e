import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, Validity } from '@peculiar/asn1-x509';
import type { KeyAlgorithm } from '../distributions/types.js';
import { caFromMaterial, createCa, issueLeaf } from '../simulation/issue.js';
import { generateKeyPair } from './keys.js';
import { parsePem } from './pem.js';
import {
  AUTHORITY_KEY_IDENTIFIER_OID,
  SUBJECT_KEY_IDENTIFIER_OID,
  authorityKeyIdentifierExtension,
  certificateFields,
  keyIdentifierOf,
  signatureAlgorithmDer,
  subjectKeyIdentifierExtension,
  timeDer,
  validityDer,
} from './tbs.js';
import { x509 } from './x509.js';

const P256: KeyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' };
const RSA: KeyAlgorithm = { name: 'RSA', modulusLength: 2048 };

// A certificate as openssl makes it, independent of our own issuing code.
function opensslCertificate(): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'tbs-test-'));
  try {
    const cnf = join(dir, 'openssl.cnf');
    writeFileSync(cnf, [
      '[req]', 'distinguished_name = dn', '[dn]', '[v3]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth,clientAuth',
      'subjectAltName = DNS:kubernetes,IP:10.43.0.1',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
    ].join('\n'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k'), '-out', join(dir, 'c'),
      '-subj', '/O=system:masters/CN=kube-apiserver', '-days', '1', '-config', cnf, '-extensions', 'v3'], { stdio: 'pipe' });
    return execFileSync('openssl', ['x509', '-in', join(dir, 'c'), '-outform', 'DER']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('certificateFields', () => {
  test('slices exactly what @peculiar/asn1-x509 decodes, for an openssl certificate', () => {
    const der = opensslCertificate();
    const f = certificateFields(der);
    const asn = AsnConvert.parse(der, Certificate);
    expect(Buffer.from(f.tbs)).toEqual(Buffer.from(AsnConvert.serialize(asn.tbsCertificate)));
    expect(Buffer.from(f.subject)).toEqual(Buffer.from(AsnConvert.serialize(asn.tbsCertificate.subject)));
    expect(Buffer.from(f.issuer)).toEqual(Buffer.from(AsnConvert.serialize(asn.tbsCertificate.issuer)));
    expect(Buffer.from(f.subjectPublicKeyInfo)).toEqual(Buffer.from(AsnConvert.serialize(asn.tbsCertificate.subjectPublicKeyInfo)));
    const exts = asn.tbsCertificate.extensions!;
    expect(exts).toHaveLength(5); // self-signed: no AuthorityKeyIdentifier
    expect(f.extensions.map((e) => Buffer.from(e.der))).toEqual(exts.map((e) => Buffer.from(AsnConvert.serialize(e))));
    expect(f.extensions.map((e) => e.critical)).toEqual(exts.map((e) => e.critical));
  });

  test('refuses what is not a certificate, or has more after it', () => {
    const der = opensslCertificate();
    expect(() => certificateFields(Buffer.concat([der, Buffer.of(0)]))).toThrow('bytes after');
    expect(() => certificateFields(der.subarray(0, der.length - 1))).toThrow();
    expect(() => certificateFields(Buffer.from('3003020101', 'hex'))).toThrow('top-level fields');
  });
});

describe('encoders agree byte for byte with @peculiar/x509 and asn1-x509', () => {
  test.each([P256, RSA])('key identifiers for %o', async (algorithm) => {
    const keys = await generateKeyPair(algorithm);
    const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
    const cryptoKey = keys.publicKey.toCryptoKey(
      algorithm.name === 'ECDSA' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      true,
      ['verify'],
    ) as unknown as CryptoKey;
    const keyId = keyIdentifierOf(spki);
    for (const critical of [false, true]) {
      const ski = await x509.SubjectKeyIdentifierExtension.create(cryptoKey, critical);
      expect(subjectKeyIdentifierExtension(keyId, critical)).toEqual(Buffer.from(ski.rawData));
      const aki = new x509.AuthorityKeyIdentifierExtension(keyId.toString('hex'), critical);
      expect(authorityKeyIdentifierExtension(keyId, critical)).toEqual(Buffer.from(aki.rawData));
    }
    expect(Buffer.from(subjectKeyIdentifierExtension(keyId, false)).includes(SUBJECT_KEY_IDENTIFIER_OID)).toBe(true);
    expect(Buffer.from(authorityKeyIdentifierExtension(keyId, false)).includes(AUTHORITY_KEY_IDENTIFIER_OID)).toBe(true);
  });

  test.each([
    '1950-01-01T00:00:00Z',
    '1999-12-31T23:59:59Z',
    '2025-02-03T04:05:06Z',
    '2049-12-31T23:59:59Z',
    '2050-01-01T00:00:00Z',
    '2125-06-07T08:09:10Z',
  ])('validity at %s (UTCTime through 2049, GeneralizedTime after)', (iso) => {
    const d = new Date(iso);
    expect(validityDer(d, d)).toEqual(Buffer.from(AsnConvert.serialize(new Validity({ notBefore: d, notAfter: d }))));
  });

  test('times before 1950 are GeneralizedTime (RFC 5280), not two-digit years', () => {
    expect(timeDer(new Date('1949-12-31T23:59:59Z')).toString('latin1')).toBe('\x18\x0f19491231235959Z');
  });

  test('signature algorithms: ecdsa-with-SHA256 without parameters, sha256WithRSAEncryption with NULL', () => {
    expect(signatureAlgorithmDer(P256).toString('hex')).toBe('300a06082a8648ce3d040302');
    expect(signatureAlgorithmDer(RSA).toString('hex')).toBe('300d06092a864886f70d01010b0500');
  });
});

test('a fixture leaf and its CA: the CA subject is the leaf issuer, byte for byte', async () => {
  const ca = await caFromMaterial(await createCa('kube-ca', P256, 'sec1'));
  const leaf = await issueLeaf({ template: { cn: 'x', eku: ['clientAuth'] }, ca, validity: { days: 1, notBefore: 'ca-not-before' }, algorithm: P256, encoding: 'sec1', chained: false });
  const f = certificateFields(parsePem(leaf.certPem, 'x')[0]!.der);
  expect(Buffer.from(f.issuer)).toEqual(Buffer.from(ca.subjectDer));
});
