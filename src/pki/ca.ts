// A CA as found on disk, checked before anything is signed with it.
import { X509Certificate } from 'node:crypto';
import { CertificateFileError } from './errors.js';
import { parseCertificates } from './certfile.js';
import { importSigningKey, parsePrivateKey, spkiOf } from './keys.js';
import { encodePem } from './pem.js';
import type { KeyAlgorithm } from '../distributions/types.js';
import { x509 } from './x509.js';

export interface SigningCa {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: X509Certificate;
  readonly certDer: Buffer;
  // Every certificate of the CA file, re-encoded; what RKE2 appends to a chained .crt.
  readonly chainPem: string;
  readonly signingKey: CryptoKey;
  readonly algorithm: KeyAlgorithm;
  // Parsed once: every renewal names the CA as issuer and takes its key identifier.
  readonly parsed: x509.X509Certificate;
  readonly subjectKeyId?: string;
}

export async function loadSigningCa(certText: string, certFile: string, keyText: string, keyFile: string): Promise<SigningCa> {
  const { blocks, certs } = parseCertificates(certText, certFile);
  const cert = certs[0]!;
  if (!cert.ca) throw new CertificateFileError(certFile, 'is not a CA certificate (basicConstraints CA:FALSE)');
  const key = parsePrivateKey(keyText, keyFile);
  if (!spkiOf(key.keyObject).equals(spkiOf(cert.publicKey))) {
    throw new CertificateFileError(keyFile, `private key does not match CA certificate ${certFile}`);
  }
  const parsed = new x509.X509Certificate(new Uint8Array(blocks[0]!.der));
  const ski = parsed.getExtension(x509.SubjectKeyIdentifierExtension);
  return {
    parsed,
    ...(ski ? { subjectKeyId: ski.keyId } : {}),
    certFile,
    keyFile,
    cert,
    certDer: blocks[0]!.der,
    chainPem: blocks.map((b) => encodePem('CERTIFICATE', b.der)).join(''),
    signingKey: await importSigningKey(key),
    algorithm: key.algorithm,
  };
}
