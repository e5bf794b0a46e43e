// Renewing a certificate from the one it replaces: same identity and usages, a
// new key of the same type, a fresh serial, validity by the distribution's
// profile, signed by the catalog's CA after proving the old one chains to it.
import { randomBytes, type X509Certificate } from 'node:crypto';
import type { KeyEncoding, ValidityProfile } from '../distributions/types.js';
import { CertificateFileError } from './errors.js';
import { readCertificateFile, serialOf } from './certfile.js';
import type { SigningCa } from './ca.js';
import { encodePrivateKey, generateKeyPair, keyAlgorithmOf, parsePrivateKey, signingAlgorithm, spkiOf } from './keys.js';
import { encodePem } from './pem.js';
import { x509 } from './x509.js';

const HOUR = 3600_000;
const SUBJECT_KEY_IDENTIFIER = '2.5.29.14';
const AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';

// @peculiar/x509 wants ArrayBuffer-backed views; Node Buffers may sit on a SharedArrayBuffer-typed pool.
const bytes = (b: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(b);
const DAY = 24 * HOUR;

export interface RenewRequest {
  readonly certText: string;
  readonly certFile: string;
  readonly keyText: string;
  readonly keyFile: string;
  readonly ca: SigningCa;
  readonly validity: ValidityProfile;
  readonly chained: boolean;
  readonly now?: Date;
}

export interface RenewedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  readonly oldSerial: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

// dynamiclistener and RKE both draw a random positive serial below 2^63.
export function randomSerialHex(): string {
  const raw = randomBytes(8);
  raw[0]! &= 0x7f;
  const hex = raw.toString('hex').replace(/^0+/, '');
  return hex === '' ? '01' : hex.length % 2 ? `0${hex}` : hex;
}

export function validityWindow(profile: ValidityProfile, caNotBefore: Date, now: Date): { notBefore: Date; notAfter: Date } {
  // Whole seconds: X.509 times have no fractions, and a NotBefore in the future by
  // milliseconds would make a just-issued certificate fail verification.
  const nowS = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const notBefore =
    profile.notBefore === 'ca-not-before'
      ? caNotBefore
      : new Date(Math.max(nowS.getTime() - HOUR, caNotBefore.getTime()));
  return { notBefore, notAfter: new Date(nowS.getTime() + profile.days * DAY) };
}

export function assertSignedBy(cert: X509Certificate, ca: SigningCa, file: string): void {
  // Signature verification, not issuer-name matching: a certificate from another
  // CA with the same name (every RKE2 cluster has an "rke2-client-ca@...") must fail.
  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) {
    throw new CertificateFileError(file, `is not signed by the CA ${ca.certFile} (issuer "${cert.issuer.replace(/\n/g, ', ')}")`);
  }
}

export interface SignParams {
  readonly subject: x509.Name | string;
  readonly extensions: x509.Extension[];
  readonly publicKey: CryptoKey;
  readonly ca: SigningCa;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export async function signCertificate(p: SignParams): Promise<{ der: Buffer; serial: string }> {
  const serial = randomSerialHex();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: p.subject,
    issuer: p.ca.parsed.subjectName,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    publicKey: p.publicKey,
    signingKey: p.ca.signingKey,
    signingAlgorithm: signingAlgorithm(p.ca.algorithm),
    extensions: p.extensions,
  });
  return { der: Buffer.from(cert.rawData), serial: serial.toUpperCase().replace(/^0+(?=.)/, '') };
}

// The old certificate's extensions, verbatim (the parsed objects are reused, not
// re-encoded), except the two that name keys.
async function carriedExtensions(old: x509.X509Certificate, publicKey: CryptoKey, ca: SigningCa): Promise<x509.Extension[]> {
  const out: x509.Extension[] = [];
  for (const ext of old.extensions) {
    if (ext.type === SUBJECT_KEY_IDENTIFIER) {
      out.push(await x509.SubjectKeyIdentifierExtension.create(publicKey, ext.critical));
    } else if (ext.type === AUTHORITY_KEY_IDENTIFIER && ca.subjectKeyId) {
      out.push(new x509.AuthorityKeyIdentifierExtension(ca.subjectKeyId, ext.critical));
    } else {
      out.push(ext);
    }
  }
  return out;
}

export async function renewCertificate(req: RenewRequest): Promise<RenewedCertificate> {
  const old = readCertificateFile(req.certText, req.certFile, 'pem');
  assertSignedBy(old.leaf, req.ca, req.certFile);
  const oldKey = parsePrivateKey(req.keyText, req.keyFile);
  if (!spkiOf(oldKey.keyObject).equals(spkiOf(old.leaf.publicKey))) {
    throw new CertificateFileError(req.keyFile, `private key does not match certificate ${req.certFile}`);
  }
  const algorithm = keyAlgorithmOf(old.leaf.publicKey, req.certFile);
  const keys = await generateKeyPair(algorithm);
  const parsed = new x509.X509Certificate(bytes(old.leafDer));
  const window = validityWindow(req.validity, new Date(req.ca.cert.validFrom), req.now ?? new Date());
  const { der, serial } = await signCertificate({
    subject: parsed.subjectName,
    extensions: await carriedExtensions(parsed, keys.publicKey, req.ca),
    publicKey: keys.publicKey,
    ca: req.ca,
    ...window,
  });
  return {
    certPem: encodePem('CERTIFICATE', der) + (req.chained ? req.ca.chainPem : ''),
    keyPem: encodePrivateKey(keys, oldKey.encoding),
    oldSerial: serialOf(old.leaf),
    serial,
    ...window,
  };
}

// A key-only file: a new key of the same type, encoded like the original.
export async function renewKeyOnly(keyText: string, keyFile: string): Promise<string> {
  const old = parsePrivateKey(keyText, keyFile);
  const keys = await generateKeyPair(old.algorithm);
  return encodePrivateKey(keys, old.encoding satisfies KeyEncoding);
}
