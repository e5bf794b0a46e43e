// Minting CAs and leaves from catalog templates, the way the distributions do,
// for fixtures and for the simulated distribution's own re-issuing.
import type { KeyAlgorithm, KeyEncoding, SubjectTemplate, ValidityProfile } from '../distributions/types.js';
import { loadSigningCa, type SigningCa } from '../pki/ca.js';
import { encodePrivateKey, generateKeyPair, signingAlgorithm, toCryptoKeys } from '../pki/keys.js';
import { encodePem } from '../pki/pem.js';
import { signCertificate, validityWindow, randomSerialHex } from '../pki/renew.js';
import { x509 } from '../pki/x509.js';

const YEAR = 365 * 24 * 3600_000;

export interface CaMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

export async function createCa(cn: string, algorithm: KeyAlgorithm, encoding: KeyEncoding, notBefore = new Date()): Promise<CaMaterial> {
  const keys = await generateKeyPair(algorithm);
  const cryptoKeys = toCryptoKeys(keys, algorithm);
  const nb = new Date(Math.floor(notBefore.getTime() / 1000) * 1000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    // dynamiclistener and RKE give CAs serial 0.
    serialNumber: '00',
    name: [{ CN: [cn] }],
    notBefore: nb,
    notAfter: new Date(nb.getTime() + 10 * YEAR),
    keys: cryptoKeys,
    signingAlgorithm: signingAlgorithm(algorithm),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(cryptoKeys.publicKey),
    ],
  });
  return { certPem: encodePem('CERTIFICATE', new Uint8Array(cert.rawData)), keyPem: encodePrivateKey(keys, encoding) };
}

export function caFromMaterial(m: CaMaterial, name = 'ca'): Promise<SigningCa> {
  return loadSigningCa(m.certPem, `${name}.crt`, m.keyPem, `${name}.key`);
}

const EKU_OID = { serverAuth: x509.ExtendedKeyUsage.serverAuth, clientAuth: x509.ExtendedKeyUsage.clientAuth } as const;

export function fillTemplate(t: SubjectTemplate, vars: Readonly<Record<string, string>>): SubjectTemplate {
  const f = (s: string) => s.replace(/\{(\w+)\}/g, (w, n: string) => vars[n] ?? w);
  return {
    cn: f(t.cn),
    ...(t.o ? { o: t.o.map(f) } : {}),
    ...(t.dns ? { dns: [...new Set(t.dns.map(f))] } : {}),
    ...(t.ips ? { ips: [...new Set(t.ips.map(f))] } : {}),
    eku: t.eku,
  };
}

export interface LeafOptions {
  readonly template: SubjectTemplate;
  readonly ca: SigningCa;
  readonly validity: ValidityProfile;
  readonly algorithm: KeyAlgorithm;
  readonly encoding: KeyEncoding;
  readonly chained: boolean;
  readonly now?: Date;
}

// Go's x509 with a template like dynamiclistener's / RKE's NewSignedCert:
// KeyUsage digitalSignature|keyEncipherment (critical), the EKUs, SANs, and an
// AuthorityKeyIdentifier from the CA's SubjectKeyIdentifier.
export async function issueLeaf(o: LeafOptions): Promise<{ certPem: string; keyPem: string; serial: string }> {
  const keys = await generateKeyPair(o.algorithm);
  const t = o.template;
  const extensions: x509.Extension[] = [
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(t.eku.map((e) => EKU_OID[e])),
    new x509.BasicConstraintsExtension(false, undefined, true),
  ];
  if (o.ca.subjectKeyId) extensions.push(new x509.AuthorityKeyIdentifierExtension(o.ca.subjectKeyId));
  const names = [...(t.dns ?? []).map((value) => ({ type: 'dns' as const, value })), ...(t.ips ?? []).map((value) => ({ type: 'ip' as const, value }))];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  // Organization before CommonName, as Go's pkix.Name marshals it.
  const subject: x509.JsonName = [...(t.o?.length ? [{ O: [...t.o] }] : []), { CN: [t.cn] }];
  const name = new x509.Name(subject);
  const { clampedToCa: _clamped, ...window } = validityWindow(o.validity, o.ca, o.now ?? new Date());
  const { der, serial } = await signCertificate({
    subject: new Uint8Array(name.toArrayBuffer()),
    extensions: extensions.map((e) => new Uint8Array(e.rawData)),
    subjectPublicKeyInfo: keys.publicKey.export({ type: 'spki', format: 'der' }),
    ca: o.ca,
    ...window,
  });
  return {
    certPem: encodePem('CERTIFICATE', der) + (o.chained ? o.ca.chainPem : ''),
    keyPem: encodePrivateKey(keys, o.encoding),
    serial,
  };
}

export { randomSerialHex };
