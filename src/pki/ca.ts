// A CA as found on disk, checked before anything is signed with it. Everything a
// renewal needs from it is taken out once here, not per certificate.
import { type KeyObject, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Extension, SubjectKeyIdentifier } from '@peculiar/asn1-x509';
import { CertificateFileError } from './errors.js';
import { parseCertificates, type KnownCertificate } from './certfile.js';
import { parsePrivateKey } from './keys.js';
import { encodePem } from './pem.js';
import type { KeyAlgorithm } from '../distributions/types.js';
import { SUBJECT_KEY_IDENTIFIER_OID, certificateFields, signatureOf } from './tbs.js';

export interface SigningCa {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: X509Certificate;
  readonly certDer: Buffer;
  // Every certificate of the CA file, re-encoded; what RKE2 appends to a chained .crt.
  readonly chainPem: string;
  // The same certificates as parsed here: a chained .crt that appends them is not parsed again.
  readonly chain: readonly KnownCertificate[];
  readonly signingKey: KeyObject;
  readonly algorithm: KeyAlgorithm;
  readonly notBefore: Date;
  // What it signs is clamped to this, and nothing is signed after it (renew.ts validityWindow).
  readonly notAfter: Date;
  // The CA's subject as encoded in its certificate: every renewal's issuer, byte for byte.
  readonly subjectDer: Uint8Array;
  // The AlgorithmIdentifier of the signatures this CA's key makes, and the digest they use.
  readonly signatureAlgorithm: Uint8Array;
  readonly signatureHash: 'sha256' | 'sha384';
  // The CA's SubjectKeyIdentifier (hex, and its bytes), for the AuthorityKeyIdentifier.
  readonly subjectKeyId?: string;
  readonly subjectKeyIdBytes?: Uint8Array;
}

export async function loadSigningCa(certText: string, certFile: string, keyText: string, keyFile: string): Promise<SigningCa> {
  const { blocks, certs } = parseCertificates(certText, certFile);
  const cert = certs[0]!;
  if (!cert.ca) throw new CertificateFileError(certFile, 'is not a CA certificate (basicConstraints CA:FALSE)');
  const key = parsePrivateKey(keyText, keyFile);
  if (!cert.checkPrivateKey(key.keyObject)) {
    throw new CertificateFileError(keyFile, `private key does not match CA certificate ${certFile}`);
  }
  let fields;
  try {
    fields = certificateFields(blocks[0]!.der);
  } catch (e) {
    throw new CertificateFileError(certFile, `unexpected certificate structure: ${(e as Error).message}`);
  }
  const ski = fields.extensions.find((e) => Buffer.from(e.oid).equals(SUBJECT_KEY_IDENTIFIER_OID));
  let subjectKeyIdBytes: Uint8Array | undefined;
  if (ski) {
    // Extension ::= SEQUENCE { extnID, critical?, extnValue OCTET STRING (SubjectKeyIdentifier) }
    const ext = AsnConvert.parse(ski.der, Extension);
    subjectKeyIdBytes = new Uint8Array(AsnConvert.parse(ext.extnValue, SubjectKeyIdentifier).buffer);
  }
  return {
    ...(subjectKeyIdBytes ? { subjectKeyId: Buffer.from(subjectKeyIdBytes).toString('hex'), subjectKeyIdBytes } : {}),
    certFile,
    keyFile,
    cert,
    certDer: blocks[0]!.der,
    chainPem: blocks.map((b) => encodePem('CERTIFICATE', b.der)).join(''),
    chain: blocks.map((b, i) => ({ der: b.der, cert: certs[i]! })),
    signingKey: key.keyObject,
    algorithm: key.algorithm,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    subjectDer: fields.subject,
    signatureAlgorithm: signatureOf(key.algorithm).der,
    signatureHash: signatureOf(key.algorithm).hash,
  };
}
