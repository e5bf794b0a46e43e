// The read-only half of a rotation: read and check every file in the plan and
// make all replacement material in memory. Any problem (a missing file, a wrong
// CA, a corrupt PEM, a CA key that does not match) is found here, before a single
// byte on the host changes.
import { X509Certificate } from 'node:crypto';
import { loadSigningCa, type SigningCa } from '../pki/ca.js';
import { parseCertificates, readCertificateFile, serialOf } from '../pki/certfile.js';
import { CertificateFileError } from '../pki/errors.js';
import { parsePrivateKey, spkiOf } from '../pki/keys.js';
import { renewCertificate, renewKeyOnly } from '../pki/renew.js';
import { dropsSubjectAltName, givesForeignKey } from './testhooks.js';
import { signedByOf, type SignedBy } from './issuer.js';
import type { EffectiveValidity } from './validity.js';
import type { OwnerAndMode } from './journal.js';
import type { PlannedFile } from './plan.js';
import type { HostRoot } from './root.js';

export interface PreparedFile {
  readonly planned: PlannedFile;
  readonly oldSerial?: string;
  readonly newSerial?: string;
  readonly notAfter?: Date;
  readonly certPem?: string;
  readonly keyPem?: string;
  readonly certMeta?: OwnerAndMode;
  readonly keyMeta?: OwnerAndMode;
  // remove-to-regenerate: who signed the file being replaced.
  readonly signedBy?: SignedBy;
  // sign: the validity used and where it came from.
  readonly validity?: string;
}

async function readText(host: HostRoot, path: string, what: string): Promise<string> {
  try {
    return (await host.readFile(path)).toString('utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'missing' : code === 'EACCES' ? 'not readable (permission denied)' : (e as Error).message;
    throw new CertificateFileError(path, `${reason} (${what})`);
  }
}

async function metaOf(host: HostRoot, path: string): Promise<OwnerAndMode> {
  const st = await host.stat(path);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

/** A certificate and key issued elsewhere (the controller's RKE bundle), to install as they are. */
export interface ProvidedPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Provided material by the cert path as the plan names it (host-relative, e.g. etc/kubernetes/ssl/kube-node.pem). */
export type ProvidedMaterial = ReadonlyMap<string, ProvidedPair>;

// A new pair, before anything is written, whether renewed here (its DER comes
// from our own encoder) or provided by the controller's bundle (installed
// instead of signing; the on-disk CA key is never read): parsed back by
// OpenSSL, signed by this node's CA (signature, not name), its key the
// certificate's, the subject of the file it replaces, a leaf valid now. The SANs are carried from the old certificate's DER
// unchanged and are not compared here: the verification after the restart, by the
// components themselves, is what proves they are right (the test fault that drops
// them relies on that).
function checkNewPair(p: PlannedFile, pair: { certPem: string; keyPem: string }, ca: X509Certificate, oldLeaf: X509Certificate, now: Date, source: string) {
  const where = `${p.cert} (${source})`;
  const { certs } = parseCertificates(pair.certPem, where);
  const leaf = certs[0]!;
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) {
    throw new CertificateFileError(where, `is not signed by this node's CA ${p.ca!.cert} (issuer "${leaf.issuer.replace(/\n/g, ', ')}")`);
  }
  const key = parsePrivateKey(pair.keyPem, `${p.key} (${source})`);
  if (!spkiOf(key.keyObject).equals(spkiOf(leaf.publicKey))) {
    throw new CertificateFileError(`${p.key} (${source})`, `private key does not match the ${source} certificate for ${p.cert}`);
  }
  if (leaf.subject !== oldLeaf.subject) {
    throw new CertificateFileError(where, `names subject "${leaf.subject.replace(/\n/g, ', ')}", the file it replaces "${oldLeaf.subject.replace(/\n/g, ', ')}"`);
  }
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now.getTime() || new Date(leaf.validFrom).getTime() > now.getTime()) {
    throw new CertificateFileError(where, `is not valid now (${leaf.validFrom} – ${leaf.validTo})`);
  }
  if (leaf.ca) throw new CertificateFileError(where, 'is a CA certificate, not a leaf');
  return { serial: serialOf(leaf), notAfter };
}

// `validityOf`: the validity each signed file gets on this node (the catalog's
// profile with the distribution's environment applied); the catalog's profile without it.
export async function prepareFiles(
  host: HostRoot,
  plan: readonly PlannedFile[],
  now: Date,
  provided?: ProvidedMaterial,
  validityOf?: (p: PlannedFile) => EffectiveValidity,
): Promise<PreparedFile[]> {
  const cas = new Map<string, Promise<SigningCa>>();
  const caFor = (p: PlannedFile): Promise<SigningCa> => {
    const ca = p.ca!;
    if (!cas.has(ca.cert)) {
      cas.set(
        ca.cert,
        (async () => {
          const certText = await readText(host, ca.cert, `CA certificate for ${p.id}`);
          const keyText = await readText(host, ca.key, `CA key needed to sign ${p.cert}`);
          return loadSigningCa(certText, ca.cert, keyText, ca.key);
        })(),
      );
    }
    return cas.get(ca.cert)!;
  };

  const out: PreparedFile[] = [];
  for (const p of plan) {
    const what = `service ${p.service}`;
    const certMeta = p.cert && !p.missing ? await metaOf(host, p.cert) : undefined;
    const keyMeta = p.key && (await host.exists(p.key)) ? await metaOf(host, p.key) : undefined;
    const base = { planned: p, ...(certMeta ? { certMeta } : {}), ...(keyMeta ? { keyMeta } : {}) };
    switch (p.spec.renewal.kind) {
      case 'sign': {
        const certText = await readText(host, p.cert!, what);
        const keyText = await readText(host, p.key!, what);
        if (provided) {
          // With a bundle every signed file comes from it: signing one locally
          // would make it differ from the cluster state the controller writes.
          const pair = provided.get(p.cert!);
          if (!pair) throw new CertificateFileError(p.cert!, `is not in the controller-issued bundle (service ${p.service}); refusing to sign it locally`);
          const old = readCertificateFile(certText, p.cert!, p.spec.format);
          const caText = await readText(host, p.ca!.cert, `CA certificate for ${p.id}`);
          const ca = parseCertificates(caText, p.ca!.cert).certs[0]!;
          const { serial, notAfter } = checkNewPair(p, pair, ca, old.leaf, now, 'controller-issued bundle');
          out.push({ ...base, oldSerial: serialOf(old.leaf), newSerial: serial, notAfter, certPem: pair.certPem, keyPem: pair.keyPem });
          break;
        }
        const validity = validityOf?.(p);
        const signer = await caFor(p);
        const renewed = await renewCertificate({
          certText,
          certFile: p.cert!,
          keyText,
          keyFile: p.key!,
          ca: signer,
          validity: validity?.profile ?? p.spec.validity,
          chained: p.spec.chained,
          now,
          ...(dropsSubjectAltName(p.spec.id) ? { dropSubjectAltName: true } : {}),
        });
        const made = givesForeignKey(p.spec.id) ? { ...renewed, keyPem: await renewKeyOnly(keyText, p.key!) } : renewed;
        checkNewPair(p, made, signer.cert, readCertificateFile(certText, p.cert!, p.spec.format).leaf, now, 'renewed');
        out.push({
          ...base,
          oldSerial: renewed.oldSerial,
          newSerial: renewed.serial,
          notAfter: renewed.notAfter,
          certPem: made.certPem,
          keyPem: made.keyPem,
          ...validityNote(validity?.description, renewed),
        });
        break;
      }
      case 'new-key': {
        const keyPem = await renewKeyOnly(await readText(host, p.key!, what), p.key!);
        out.push({ ...base, keyPem });
        break;
      }
      case 'reissued-on-start':
      case 'trigger': {
        if (p.missing) {
          // Nothing to read or back up; the CA the new file must chain to has to be
          // there, or verification after the restart could only fail.
          new X509Certificate(await readText(host, p.caCert!, `CA certificate for ${p.id}`));
          out.push(base);
          break;
        }
        const file = readCertificateFile(await readText(host, p.cert!, what), p.cert!, p.spec.format);
        // Even when the distribution re-issues, a file that does not chain to its CA
        // means this node is not what the catalog describes: stop before touching it.
        const caCert = new X509Certificate(await readText(host, p.caCert!, `CA certificate for ${p.id}`));
        if (!file.leaf.verify(caCert.publicKey)) throw new CertificateFileError(p.cert!, `is not signed by the CA ${p.caCert}`);
        out.push({ ...base, oldSerial: serialOf(file.leaf) });
        break;
      }
      case 'remove-to-regenerate': {
        // Self-signed by the component or signed by the distribution's CA (k3s PR
        // #12285): read from the file. Anything else is not what the catalog
        // describes (a user's own --tls-cert-file pair, say): removing it would
        // replace it with one the user did not choose.
        const certText = await readText(host, p.cert!, what);
        const file = readCertificateFile(certText, p.cert!, p.spec.format);
        const caText = p.distributionCa && (await host.exists(p.distributionCa)) ? await readText(host, p.distributionCa, `CA certificate for ${p.id}`) : undefined;
        const signedBy = signedByOf(certText, p.cert!, p.spec.format, caText, p.distributionCa);
        out.push({ ...base, oldSerial: serialOf(file.leaf), signedBy });
        break;
      }
    }
  }
  return out;
}

// What the report says about the new leaf's validity: where the profile came from,
// and that the CA's own expiry cut it short.
function validityNote(description: string | undefined, renewed: { notAfter: Date; clampedToCa: boolean }): { validity?: string } {
  const clamp = renewed.clampedToCa ? `clamped to the CA's notAfter ${renewed.notAfter.toISOString()}: the CA expires first; plan its rotation` : undefined;
  const text = [description, clamp].filter(Boolean).join('; ');
  return text ? { validity: text } : {};
}
