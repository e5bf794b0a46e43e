// Renewing a certificate from the one it replaces: same identity and usages, a
// new key of the same type, a fresh serial, validity by the distribution's
// profile, signed by the catalog's CA after proving the old one chains to it.
//
// The hot path touches no JavaScript ASN.1 decoder: OpenSSL (node's X509Certificate)
// parses and checks the old certificate, its fields are sliced out as DER and copied
// into the new TBSCertificate, and the CA's KeyObject signs it on the libuv
// threadpool. Key generation (RSA-2048: tens of ms) runs there too. What stays on the
// event loop is three short synchronous sections; `trace` marks where each starts and ends.
import { randomBytes, sign as nodeSign, type KeyObject, type X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import type { KeyEncoding, ValidityProfile } from '../distributions/types.js';
import { CertificateFileError } from './errors.js';
import { normalSerial, readCertificateFile, serialOf } from './certfile.js';
import type { SigningCa } from './ca.js';
import { encodePrivateKey, generateEncodedKeyPair, generateKeyPair, keyAlgorithmOf, loadPrivateKey, parsePrivateKey } from './keys.js';
import { encodePem } from './pem.js';
import {
  AUTHORITY_KEY_IDENTIFIER_OID,
  SUBJECT_ALT_NAME_OID,
  SUBJECT_KEY_IDENTIFIER_OID,
  authorityKeyIdentifierExtension,
  certificateFields,
  encodeCertificate,
  encodeTbs,
  keyAlgorithmOfSpki,
  keyIdentifierOf,
  subjectKeyIdentifierExtension,
  type ExtensionDer,
} from './tbs.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

// crypto.sign with a callback runs on the threadpool; ECDSA signatures come out DER-encoded, as X.509 wants them.
const signAsync = promisify(nodeSign) as (algorithm: string, data: Uint8Array, key: KeyObject) => Promise<Buffer>;

// The synchronous sections of one renewal, in order: what blocks the event loop.
export type RenewSection = 'check' | 'build' | 'finish';
// Called as each section starts and ends, so a caller can time them (the benchmark).
export type RenewTrace = (section: RenewSection, edge: 'start' | 'end') => void;

function timed<T>(trace: RenewTrace | undefined, section: RenewSection, run: () => T): T {
  if (!trace) return run();
  trace(section, 'start');
  try {
    return run();
  } finally {
    trace(section, 'end');
  }
}

export interface RenewRequest {
  readonly certText: string;
  readonly certFile: string;
  readonly keyText: string;
  readonly keyFile: string;
  readonly ca: SigningCa;
  readonly validity: ValidityProfile;
  readonly chained: boolean;
  readonly now?: Date;
  readonly trace?: RenewTrace;
  // Test-only fault (see host/testhooks.ts): leave the subjectAltName extension
  // out, as a broken renewal would, so tests can prove the real components reject it.
  readonly dropSubjectAltName?: boolean;
}

export interface RenewedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  readonly oldSerial: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  // notAfter is the CA's: the profile's validity would have outlived it.
  readonly clampedToCa: boolean;
}

// dynamiclistener and RKE both draw a random positive serial below 2^63.
export function randomSerialHex(): string {
  const raw = randomBytes(8);
  raw[0]! &= 0x7f;
  const hex = raw.toString('hex').replace(/^0+/, '');
  return hex === '' ? '01' : hex.length % 2 ? `0${hex}` : hex;
}

/** The part of a CA that bounds what it signs. */
export interface CaValidity {
  readonly certFile: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface ValidityWindow {
  readonly notBefore: Date;
  readonly notAfter: Date;
  // The profile's notAfter was past the CA's and was brought back to it: a leaf
  // cannot be trusted past its CA, so a longer validity would only mislead whoever
  // reads the leaf's expiry (`node check`, the inventory, a renewal policy).
  readonly clampedToCa: boolean;
}

/**
 * The new leaf's validity, by the profile, inside the CA's. A CA that has expired,
 * or is not valid yet, signs nothing: what it signed would be refused by every
 * client that checks the chain (rke allowed this and made certificates no one
 * trusts, rancher/rke#1974).
 */
export function validityWindow(profile: ValidityProfile, ca: CaValidity, now: Date): ValidityWindow {
  if (now.getTime() > ca.notAfter.getTime()) {
    throw new CertificateFileError(
      ca.certFile,
      `the CA expired on ${ca.notAfter.toISOString()}: anything it signs now is refused by every client that checks the chain. Rotate the CA first (rke2 certificate rotate-ca, rke cert rotate --rotate-ca); certrotator does not rotate CAs`,
    );
  }
  if (now.getTime() < ca.notBefore.getTime()) {
    throw new CertificateFileError(ca.certFile, `the CA is not valid until ${ca.notBefore.toISOString()}: this host's clock is behind the one that made the CA; correct the clock first`);
  }
  // Whole seconds: X.509 times have no fractions, and a NotBefore in the future by
  // milliseconds would make a just-issued certificate fail verification.
  const nowS = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const notBefore =
    profile.notBefore === 'ca-not-before'
      ? ca.notBefore
      : new Date(Math.max(nowS.getTime() - HOUR, ca.notBefore.getTime()));
  // dynamiclistener counts the validity from the NotBefore it set (cert/cert.go
  // NewSignedCert: notBefore.Add(expiresAt)), so an RKE2 leaf lasts exactly
  // `days`; RKE's newSignedCert counts from now (NotAfter: time.Now().Add(...)).
  const wanted = (profile.notBefore === 'one-hour-back-clamped-to-ca' ? notBefore.getTime() : nowS.getTime()) + profile.days * DAY;
  const clampedToCa = wanted > ca.notAfter.getTime();
  return { notBefore, notAfter: new Date(clampedToCa ? ca.notAfter.getTime() : wanted), clampedToCa };
}

export function assertSignedBy(cert: X509Certificate, ca: SigningCa, file: string): void {
  // Signature verification, not issuer-name matching: a certificate from another
  // CA with the same name (every RKE2 cluster has an "rke2-client-ca@...") must fail.
  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) {
    throw new CertificateFileError(file, `is not signed by the CA ${ca.certFile} (issuer "${cert.issuer.replace(/\n/g, ', ')}")`);
  }
}

const sameOid = (ext: ExtensionDer, oid: Uint8Array): boolean => Buffer.compare(ext.oid, oid) === 0;

// The old certificate's extensions as the DER they were found in, except the two
// that name keys: the SubjectKeyIdentifier is recomputed for the new key and the
// AuthorityKeyIdentifier names the CA's (criticality kept). Without a CA SKI the
// old AKI stays as it was: it described the same CA.
export function carriedExtensions(old: readonly ExtensionDer[], newSpki: Uint8Array, ca: SigningCa): Uint8Array[] {
  return old.map((ext) => {
    if (sameOid(ext, SUBJECT_KEY_IDENTIFIER_OID)) return subjectKeyIdentifierExtension(keyIdentifierOf(newSpki), ext.critical);
    if (sameOid(ext, AUTHORITY_KEY_IDENTIFIER_OID) && ca.subjectKeyIdBytes) return authorityKeyIdentifierExtension(ca.subjectKeyIdBytes, ext.critical);
    return ext.der;
  });
}

export interface SignParams {
  // Name, Extension and SubjectPublicKeyInfo DER, copied into the certificate as they are.
  readonly subject: Uint8Array;
  readonly extensions: readonly Uint8Array[];
  readonly subjectPublicKeyInfo: Uint8Array;
  readonly ca: SigningCa;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

function tbsFor(p: SignParams): { tbs: Buffer; serial: string } {
  const serial = randomSerialHex();
  const tbs = encodeTbs({
    serial: Buffer.from(serial, 'hex'),
    signatureAlgorithm: p.ca.signatureAlgorithm,
    issuer: p.ca.subjectDer,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    subject: p.subject,
    subjectPublicKeyInfo: p.subjectPublicKeyInfo,
    extensions: p.extensions,
  });
  return { tbs, serial: normalSerial(serial) };
}

// The signed certificate, sliced again before anyone sees it: a check on our own
// encoder that it is one well-formed DER certificate whose issuer and key are the
// bytes we put there. (Not parsed back through OpenSSL: every X509Certificate is a
// native object that costs the next GC pause ~30 µs to free; src/pki/renew.test.ts
// and tbs.test.ts prove with openssl that this encoder's output is what it reads.)
function assemble(tbs: Buffer, signature: Buffer, p: SignParams, file: string): Buffer {
  const der = encodeCertificate(tbs, p.ca.signatureAlgorithm, signature);
  let fields;
  try {
    fields = certificateFields(der);
  } catch (e) {
    throw new CertificateFileError(file, `internal error: the renewed certificate is not well-formed: ${(e as Error).message}`);
  }
  if (!Buffer.from(fields.issuer).equals(p.ca.subjectDer) || !Buffer.from(fields.subjectPublicKeyInfo).equals(p.subjectPublicKeyInfo)) {
    throw new CertificateFileError(file, 'internal error: the renewed certificate does not carry the issuer and key it was built with');
  }
  return der;
}

export async function signCertificate(p: SignParams): Promise<{ der: Buffer; serial: string }> {
  const { tbs, serial } = tbsFor(p);
  return { der: assemble(tbs, await signAsync(p.ca.signatureHash, tbs, p.ca.signingKey), p, 'certificate'), serial };
}

export async function renewCertificate(req: RenewRequest): Promise<RenewedCertificate> {
  const { ca, trace } = req;
  const checked = timed(trace, 'check', () => {
    // A chained .crt ends with the CA's own certificates: those were parsed with the CA.
    const old = readCertificateFile(req.certText, req.certFile, 'pem', ca.chain);
    assertSignedBy(old.leaf, ca, req.certFile);
    const oldKey = loadPrivateKey(req.keyText, req.keyFile);
    if (!old.leaf.checkPrivateKey(oldKey.keyObject)) {
      throw new CertificateFileError(req.keyFile, `private key does not match certificate ${req.certFile}`);
    }
    let fields;
    try {
      fields = certificateFields(old.leafDer);
    } catch (e) {
      throw new CertificateFileError(req.certFile, `unexpected certificate structure: ${(e as Error).message}`);
    }
    const algorithm = keyAlgorithmOfSpki(fields.subjectPublicKeyInfo) ?? keyAlgorithmOf(old.leaf.publicKey, req.certFile);
    return { old, oldKey, fields, keys: generateEncodedKeyPair(algorithm, oldKey.encoding) };
  });
  const keys = await checked.keys;
  const { clampedToCa, ...window } = validityWindow(req.validity, ca, req.now ?? new Date());
  const built = timed(trace, 'build', () => {
    const kept = req.dropSubjectAltName ? checked.fields.extensions.filter((e) => !sameOid(e, SUBJECT_ALT_NAME_OID)) : checked.fields.extensions;
    const extensions = carriedExtensions(kept, keys.spki, ca);
    const params: SignParams = { subject: checked.fields.subject, extensions, subjectPublicKeyInfo: keys.spki, ca, ...window };
    const { tbs, serial } = tbsFor(params);
    return { params, tbs, serial, signature: signAsync(ca.signatureHash, tbs, ca.signingKey) };
  });
  const signature = await built.signature;
  return timed(trace, 'finish', () => ({
    certPem: encodePem('CERTIFICATE', assemble(built.tbs, signature, built.params, req.certFile)) + (req.chained ? ca.chainPem : ''),
    keyPem: keys.privateKeyPem,
    oldSerial: serialOf(checked.old.leaf),
    serial: built.serial,
    ...window,
    clampedToCa,
  }));
}

// A key-only file: a new key of the same type, encoded like the original.
export async function renewKeyOnly(keyText: string, keyFile: string): Promise<string> {
  const old = parsePrivateKey(keyText, keyFile);
  const keys = await generateKeyPair(old.algorithm);
  return encodePrivateKey(keys, old.encoding satisfies KeyEncoding);
}
