// A certificate's fields as bytes, and a TBSCertificate assembled from them. The
// subject, the issuer and every extension other than the two key identifiers are
// copied as the DER they were found in, never decoded and re-encoded; the new
// parts are encoded here (serial, validity, key identifiers: a few fixed shapes,
// tested byte for byte against @peculiar/asn1-x509's encoders) or, once at load,
// with @peculiar/asn1-x509 (algorithm identifiers, OIDs).
import { createHash } from 'node:crypto';
import { AsnConvert, AsnObjectIdentifierConverter } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, id_ce_authorityKeyIdentifier, id_ce_subjectAltName, id_ce_subjectKeyIdentifier } from '@peculiar/asn1-x509';
import type { KeyAlgorithm } from '../distributions/types.js';
import { TAG, bytesOf, childrenOf, contentOf, readWhole, tlv, unsignedInteger, type Tlv } from './der.js';

export interface ExtensionDer {
  // The whole Extension SEQUENCE as found.
  readonly der: Uint8Array;
  // Its extnID's DER (tag, length and body), for comparing with known OIDs.
  readonly oid: Uint8Array;
  readonly critical: boolean;
}

export interface CertificateFields {
  readonly tbs: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly subjectPublicKeyInfo: Uint8Array;
  // Absent for a v1 certificate; in the order found.
  readonly extensions: readonly ExtensionDer[];
}

const oidDer = (oid: string): Buffer => Buffer.from(AsnObjectIdentifierConverter.toASN(oid).toBER(false));
export const SUBJECT_KEY_IDENTIFIER_OID = oidDer(id_ce_subjectKeyIdentifier);
export const AUTHORITY_KEY_IDENTIFIER_OID = oidDer(id_ce_authorityKeyIdentifier);
export const SUBJECT_ALT_NAME_OID = oidDer(id_ce_subjectAltName);

const expectTag = (t: Tlv | undefined, tag: number, what: string): Tlv => {
  if (!t || t.tag !== tag) throw new Error(`certificate ${what}: want tag 0x${tag.toString(16)}, found ${t ? `0x${t.tag.toString(16)}` : 'nothing'}`);
  return t;
};

function extensionOf(der: Uint8Array, ext: Tlv): ExtensionDer {
  const [id, second, third, ...rest] = childrenOf(der, expectTag(ext, TAG.SEQUENCE, 'extension'));
  expectTag(id, TAG.OID, 'extension id');
  let critical = false;
  if (second?.tag === TAG.BOOLEAN) {
    const v = contentOf(der, second);
    if (v.length !== 1 || (v[0] !== 0xff && v[0] !== 0x00)) throw new Error('certificate extension: malformed critical flag');
    critical = v[0] === 0xff;
    expectTag(third, TAG.OCTET_STRING, 'extension value');
    if (rest.length) throw new Error('certificate extension: trailing fields');
  } else {
    expectTag(second, TAG.OCTET_STRING, 'extension value');
    if (third) throw new Error('certificate extension: trailing fields');
  }
  return { der: bytesOf(der, ext), oid: bytesOf(der, id!), critical };
}

// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
//   validity, subject, subjectPublicKeyInfo, [1] issuerUID OPTIONAL, [2] subjectUID OPTIONAL,
//   [3] extensions OPTIONAL }
export function certificateFields(der: Uint8Array): CertificateFields {
  const top = childrenOf(der, expectTag(readWhole(der), TAG.SEQUENCE, 'outer'));
  if (top.length !== 3) throw new Error(`certificate: ${top.length} top-level fields, want 3`);
  const tbs = expectTag(top[0], TAG.SEQUENCE, 'tbsCertificate');
  const f = childrenOf(der, tbs);
  let i = f[0]?.tag === TAG.explicit(0) ? 1 : 0;
  expectTag(f[i++], TAG.INTEGER, 'serialNumber');
  expectTag(f[i++], TAG.SEQUENCE, 'signature');
  const issuer = expectTag(f[i++], TAG.SEQUENCE, 'issuer');
  expectTag(f[i++], TAG.SEQUENCE, 'validity');
  const subject = expectTag(f[i++], TAG.SEQUENCE, 'subject');
  const spki = expectTag(f[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  if (f[i]?.tag === TAG.implicit(1)) i++;
  if (f[i]?.tag === TAG.implicit(2)) i++;
  let extensions: ExtensionDer[] = [];
  if (f[i]?.tag === TAG.explicit(3)) {
    const [list, ...extra] = childrenOf(der, f[i++]!);
    if (extra.length) throw new Error('certificate extensions: more than one list');
    extensions = childrenOf(der, expectTag(list, TAG.SEQUENCE, 'extensions')).map((e) => extensionOf(der, e));
  }
  if (i !== f.length) throw new Error(`certificate: unexpected field 0x${f[i]!.tag.toString(16)} in tbsCertificate`);
  return {
    tbs: bytesOf(der, tbs),
    issuer: bytesOf(der, issuer),
    subject: bytesOf(der, subject),
    subjectPublicKeyInfo: bytesOf(der, spki),
    extensions,
  };
}

// RFC 5280 4.2.1.2 method (1), as Go and @peculiar/x509 compute it: SHA-1 of the
// subjectPublicKey BIT STRING's bits.
export function keyIdentifierOf(spkiDer: Uint8Array): Buffer {
  const [, key] = childrenOf(spkiDer, readWhole(spkiDer));
  const bits = contentOf(spkiDer, expectTag(key, TAG.BIT_STRING, 'subjectPublicKey'));
  return createHash('sha1').update(bits.subarray(1)).digest();
}

// Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
const P256_KEY_ALGORITHM = Buffer.from(
  AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: '1.2.840.10045.2.1', parameters: AsnConvert.serialize(AsnObjectIdentifierConverter.toASN('1.2.840.10045.3.1.7')) })),
); // id-ecPublicKey, prime256v1
const RSA_KEY_ALGORITHM = Buffer.from(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.1', parameters: null }))); // rsaEncryption, NULL

// The two key types certrotator renews, read from a SubjectPublicKeyInfo without
// making a KeyObject (each one is a native object the next GC pause has to free);
// undefined for anything else, which the caller then names through OpenSSL.
export function keyAlgorithmOfSpki(spkiDer: Uint8Array): KeyAlgorithm | undefined {
  const [algorithm, key] = childrenOf(spkiDer, readWhole(spkiDer));
  if (!algorithm || !key || key.tag !== TAG.BIT_STRING) return undefined;
  const id = bytesOf(spkiDer, algorithm);
  if (P256_KEY_ALGORITHM.equals(id)) return key.end - key.contentStart === 66 ? { name: 'ECDSA', namedCurve: 'P-256' } : undefined;
  if (!RSA_KEY_ALGORITHM.equals(id)) return undefined;
  // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, after the unused-bits octet.
  const bits = contentOf(spkiDer, key).subarray(1);
  const [modulus] = childrenOf(bits, readWhole(bits));
  if (modulus?.tag !== TAG.INTEGER) return undefined;
  let n = contentOf(bits, modulus);
  while (n.length > 1 && n[0] === 0) n = n.subarray(1);
  const bitLength = n.length * 8 - Math.clz32(n[0]!) + 24;
  return bitLength === 2048 ? { name: 'RSA', modulusLength: 2048 } : undefined;
}

const extension = (oid: Uint8Array, critical: boolean, value: Uint8Array): Buffer =>
  tlv(TAG.SEQUENCE, oid, ...(critical ? [CRITICAL] : []), tlv(TAG.OCTET_STRING, value));
const CRITICAL = Uint8Array.of(TAG.BOOLEAN, 1, 0xff);

// SubjectKeyIdentifier ::= KeyIdentifier (OCTET STRING)
export const subjectKeyIdentifierExtension = (keyId: Uint8Array, critical: boolean): Buffer =>
  extension(SUBJECT_KEY_IDENTIFIER_OID, critical, tlv(TAG.OCTET_STRING, keyId));

// AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT KeyIdentifier OPTIONAL, ... }:
// keyIdentifier only, as Go writes it from the issuer's SubjectKeyId.
export const authorityKeyIdentifierExtension = (keyId: Uint8Array, critical: boolean): Buffer =>
  extension(AUTHORITY_KEY_IDENTIFIER_OID, critical, tlv(TAG.SEQUENCE, tlv(TAG.implicit(0), keyId)));

// What Go's x509.CreateCertificate signs with for these keys. The OIDs are spelled out:
// @peculiar/asn1-rsa 2.11's ready-made `sha256WithRSAEncryption` carries the
// sha512/256 OID.
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3';
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
// ECDSA: parameters absent (RFC 5758); RSA: parameters NULL (RFC 4055).
const ECDSA_SHA256 = Buffer.from(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 })));
const ECDSA_SHA384 = Buffer.from(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA384 })));
const RSA_SHA256 = Buffer.from(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: SHA256_WITH_RSA, parameters: null })));

/**
 * How a CA key signs, as Go's crypto/x509 picks it (signingParamsForKey): a
 * P-384 key with SHA-384, a P-256 key with SHA-256, RSA with SHA-256 whatever its size.
 */
export function signatureOf(caAlgorithm: KeyAlgorithm): { der: Buffer; hash: 'sha256' | 'sha384' } {
  if (caAlgorithm.name === 'RSA') return { der: RSA_SHA256, hash: 'sha256' };
  return caAlgorithm.namedCurve === 'P-384' ? { der: ECDSA_SHA384, hash: 'sha384' } : { der: ECDSA_SHA256, hash: 'sha256' };
}

export const signatureAlgorithmDer = (caAlgorithm: KeyAlgorithm): Buffer => signatureOf(caAlgorithm).der;

// RFC 5280 4.1.2.5: UTCTime (YYMMDDHHMMSSZ) for 1950 through 2049, GeneralizedTime
// (YYYYMMDDHHMMSSZ) otherwise; whole seconds, always Z.
export function timeDer(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`year ${year} cannot be encoded`);
  const two = (n: number) => String(n).padStart(2, '0');
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  return year >= 1950 && year < 2050
    ? tlv(TAG.UTC_TIME, Buffer.from(`${two(year % 100)}${rest}`, 'latin1'))
    : tlv(TAG.GENERALIZED_TIME, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'latin1'));
}

export const validityDer = (notBefore: Date, notAfter: Date): Buffer => tlv(TAG.SEQUENCE, timeDer(notBefore), timeDer(notAfter));

export interface TbsParams {
  readonly serial: Uint8Array; // big-endian magnitude, positive
  readonly signatureAlgorithm: Uint8Array;
  readonly issuer: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: Uint8Array;
  readonly subjectPublicKeyInfo: Uint8Array;
  readonly extensions: readonly Uint8Array[];
}

const VERSION_3 = tlv(TAG.explicit(0), unsignedInteger(Uint8Array.of(2)));

export function encodeTbs(p: TbsParams): Buffer {
  const extensions = p.extensions.length ? [tlv(TAG.explicit(3), tlv(TAG.SEQUENCE, ...p.extensions))] : [];
  return tlv(
    TAG.SEQUENCE,
    // v3 when there are extensions; v1 (the default, so absent) otherwise.
    ...(p.extensions.length ? [VERSION_3] : []),
    unsignedInteger(p.serial),
    p.signatureAlgorithm,
    p.issuer,
    validityDer(p.notBefore, p.notAfter),
    p.subject,
    p.subjectPublicKeyInfo,
    ...extensions,
  );
}

// The signed certificate: signatureAlgorithm repeats the TBS's signature field.
export const encodeCertificate = (tbs: Uint8Array, signatureAlgorithm: Uint8Array, signature: Uint8Array): Buffer =>
  tlv(TAG.SEQUENCE, tbs, signatureAlgorithm, tlv(TAG.BIT_STRING, Uint8Array.of(0), signature));
