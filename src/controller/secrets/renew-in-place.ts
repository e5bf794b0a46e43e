// Renewal in place of a Secret's serving pair (issue 13 §3a): the same subject,
// SANs and usages, a new key of the same type and encoding, a fresh serial,
// signed by the same CA, valid for the old certificate's lifetime and never
// past the CA's. It is the engine the node files use (src/pki/renew.ts), fed
// from Secret data instead of files, so a webhook's certificate is built by
// the same checked code path as a kubelet's.
//
// Pure: it returns the new data and touches no object. Writing the Secret,
// keeping its backup, the caBundle, the rollout and verification are the
// steps' (target-steps.ts).
import type { SecretInfo } from './discovery.js';
import { decode, servingPairOf } from './discovery.js';
import { loadSigningCa } from '../../pki/ca.js';
import { parseCertificates } from '../../pki/certfile.js';
import { CertificateFileError } from '../../pki/errors.js';
import { renewCertificate } from '../../pki/renew.js';

const DAY = 86_400_000;

/** Where the signing CA was found: a Secret and the two data keys of its certificate and key. */
export interface CaSource {
  secret: SecretInfo;
  certKey: string;
  keyKey: string;
}

export interface RenewedServingSecret {
  /** The data keys to replace (base64), the certificate's and the key's; nothing else of the Secret changes. */
  data: Record<string, string>;
  oldSerial: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** The old lifetime would have outlived the CA, so notAfter is the CA's. */
  clampedToCa: boolean;
}

const encode = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
// How a message names one value of a Secret: never its contents.
const label = (s: SecretInfo, dataKey: string): string => `Secret ${s.namespace}/${s.name} ${dataKey}`;

export async function renewServingSecret(secret: SecretInfo, ca: CaSource, now: Date): Promise<RenewedServingSecret> {
  const pair = servingPairOf(secret);
  if (!pair) throw new CertificateFileError(label(secret, ''), 'holds no serving pair to renew');
  const certFile = label(secret, pair.cert);
  const certText = decode(secret.data[pair.cert]);
  const signing = await loadSigningCa(decode(ca.secret.data[ca.certKey]), label(ca.secret, ca.certKey), decode(ca.secret.data[ca.keyKey]), label(ca.secret, ca.keyKey));
  const { certs } = parseCertificates(certText, certFile);
  const leaf = certs[0]!;
  const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
  const renewed = await renewCertificate({
    certText,
    certFile,
    keyText: decode(secret.data[pair.key]),
    keyFile: label(secret, pair.key),
    ca: signing,
    // An hour back for clock skew, as dynamiclistener does, and the old lifetime from there.
    validity: { days: lifetime / DAY, notBefore: 'one-hour-back-clamped-to-ca' },
    // A file that carried the CA after the leaf (rancher-webhook's tls.crt) carries it again.
    chained: certs.length > 1,
    now,
  });
  return {
    data: { [pair.cert]: encode(renewed.certPem), [pair.key]: encode(renewed.keyPem) },
    oldSerial: renewed.oldSerial,
    serial: renewed.serial,
    notBefore: renewed.notBefore,
    notAfter: renewed.notAfter,
    clampedToCa: renewed.clampedToCa,
  };
}
