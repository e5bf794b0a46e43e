// Who signed a certificate that the distribution or its component makes at start
// (the kube-controller-manager / kube-scheduler serving pairs): decided from the
// file on disk, because it differs by release. Before k3s PR #12285 the component
// writes a self-signed pair into its --cert-dir (client-go
// GenerateSelfSignedCertKey: a "<host>-ca@<ts>" CA and a leaf, both in the .crt);
// from k3s v1.30.13/v1.31.9/v1.32.5/v1.33.1 (and RKE2 on them) k3s writes the
// leaf signed by server-ca with the server-ca chain after it.
import { X509Certificate } from 'node:crypto';
import type { FileFormat } from '../distributions/types.js';
import { parseCertificates, readCertificateFile } from '../pki/certfile.js';
import { CertificateFileError } from '../pki/errors.js';
import type { HostRoot } from './root.js';

// 'self-signed', or the host path of the CA file that verifies it.
export type SignedBy = 'self-signed' | { readonly caFile: string };

export const describeSignedBy = (s: SignedBy): string => (s === 'self-signed' ? 'self-signed' : `signed by ${s.caFile}`);

const signs = (ca: X509Certificate, leaf: X509Certificate): boolean => leaf.checkIssued(ca) && leaf.verify(ca.publicKey);

export function signedByOf(certText: string, certFile: string, format: FileFormat, caText: string | undefined, caFile: string | undefined): SignedBy {
  const file = readCertificateFile(certText, certFile, format);
  // Signature, not issuer name: the CA on this node must have signed it.
  if (caText !== undefined && caFile) {
    const ca = parseCertificates(caText, caFile).certs[0]!;
    if (signs(ca, file.leaf)) return { caFile };
  }
  // Self-signed: the leaf itself, or the throwaway CA written after it, signs it and signs itself.
  const selfSigner = [file.leaf, ...file.chain].find((c) => signs(c, file.leaf) && signs(c, c));
  if (selfSigner) return 'self-signed';
  throw new CertificateFileError(
    certFile,
    `is neither self-signed nor signed by ${caFile ?? 'the distribution CA'} (issuer "${file.leaf.issuer.replace(/\n/g, ', ')}")`,
  );
}

export async function signedByOnHost(host: HostRoot, certFile: string, format: FileFormat, caFile: string | undefined): Promise<SignedBy> {
  const certText = (await host.readFile(certFile)).toString('utf8');
  const caText = caFile && (await host.exists(caFile)) ? (await host.readFile(caFile)).toString('utf8') : undefined;
  return signedByOf(certText, certFile, format, caText, caFile);
}
