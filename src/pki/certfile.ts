// Reading certificate files: a .crt/.pem (leaf first, then an optional chain) or
// dynamiclistener's JSON Secret cache.
import { X509Certificate } from 'node:crypto';
import type { FileFormat } from '../distributions/types.js';
import { CertificateFileError } from './errors.js';
import { parsePem, type PemBlock } from './pem.js';

export interface CertificateFile {
  readonly file: string;
  readonly leaf: X509Certificate;
  readonly leafDer: Buffer;
  readonly chain: readonly X509Certificate[];
  // Only for dynamiclistener-json: the key PEM embedded in the same file.
  readonly embeddedKeyPem?: string;
}

// A certificate OpenSSL has already parsed, with the DER it was parsed from.
export interface KnownCertificate {
  readonly der: Uint8Array;
  readonly cert: X509Certificate;
}

// `known`: chain blocks (after the leaf) byte-identical to one of these (the CA a
// chained .crt appends) are not parsed again; the known X509Certificate stands for them. Each parse
// leaves a native object that the next GC pause must free (~30 µs).
export function parseCertificates(
  text: string,
  file: string,
  known: readonly KnownCertificate[] = [],
): { blocks: PemBlock[]; certs: X509Certificate[] } {
  const blocks = parsePem(text, file);
  const certs = blocks.map((b, i) => {
    if (b.type !== 'CERTIFICATE') throw new CertificateFileError(file, `PEM block ${i + 1} is ${b.type}, want CERTIFICATE`);
    const same = i > 0 ? known.find((k) => b.der.equals(k.der)) : undefined;
    if (same) return same.cert;
    try {
      return new X509Certificate(b.der);
    } catch {
      throw new CertificateFileError(file, `corrupt certificate in PEM block ${i + 1}`);
    }
  });
  return { blocks, certs };
}

export function readCertificateFile(text: string, file: string, format: FileFormat, known: readonly KnownCertificate[] = []): CertificateFile {
  let certText = text;
  let embeddedKeyPem: string | undefined;
  if (format === 'dynamiclistener-json') {
    let secret: { data?: Record<string, string> };
    try {
      secret = JSON.parse(text) as typeof secret;
    } catch {
      throw new CertificateFileError(file, 'corrupt dynamiclistener cache: not JSON');
    }
    const crt = secret.data?.['tls.crt'];
    if (typeof crt !== 'string') throw new CertificateFileError(file, 'dynamiclistener cache has no data.tls.crt');
    certText = Buffer.from(crt, 'base64').toString('utf8');
    const key = secret.data?.['tls.key'];
    if (typeof key === 'string') embeddedKeyPem = Buffer.from(key, 'base64').toString('utf8');
  }
  const { blocks, certs } = parseCertificates(certText, file, known);
  const [leaf, ...chain] = certs as [X509Certificate, ...X509Certificate[]];
  return { file, leaf, leafDer: blocks[0]!.der, chain, ...(embeddedKeyPem ? { embeddedKeyPem } : {}) };
}

// Serial as Go and openssl print it: uppercase hex without leading zeros.
export function normalSerial(hex: string): string {
  return hex.replace(/^0+(?=.)/, '').toUpperCase();
}

export function serialOf(cert: X509Certificate): string {
  return normalSerial(cert.serialNumber);
}
