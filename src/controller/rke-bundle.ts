// RKE (v1) certificates issued once per run by the controller, from the
// cluster state RKE itself keeps (Secret kube-system/full-cluster-state, key
// full-cluster-state; a ConfigMap of the same name before RKE 1.6).
//
// Why here and not on each host: RKE keeps the kube-ca key only on controlplane
// hosts (workers and etcd-only nodes cannot sign), some certificates are shared
// across nodes (kube-node on every node, every kube-etcd-<ip> on every etcd
// node) so they must be issued ONCE and written to each node, and the state
// must end up holding the very certificates the hosts hold, or the next
// `rke up` deploys the old ones again.
//
// The state's JSON (rancher/rke cluster/state.go, pki/types.go):
//   FullState{ desiredState, currentState }, each a State with
//   certificatesBundle: map[name]CertificatePKI{ certificatePEM, keyPEM, config,
//   name, commonName, ouName, envName, path, keyEnvName, keyPath, configEnvName,
//   configPath }.
// Only certificatePEM and keyPEM of the issued entries change (and, for
// kube-admin, the copy of them its embedded kubeconfig holds); the update is
// done on the text (string literal for string literal) so every other byte —
// Go's escaping, field order, the rkeConfig — stays exactly as RKE wrote it.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { rkeCatalog } from '../distributions/rke/catalog.js';
import { allFiles, templatePattern } from '../distributions/index.js';
import type { CertFile, NodeRole } from '../distributions/types.js';
import { loadSigningCa, type SigningCa } from '../pki/ca.js';
import { serialOf } from '../pki/certfile.js';
import { renewCertificate } from '../pki/renew.js';
import { openSealed, openWithSecret, sealTo, sealWithSecret, type SealedBox, type SealingKeyPair, type SealingPublicKey } from '../pki/seal.js';

// kube-ca (pki/constants.go CACertName): the CA whose key lives in the state.
const CA_ENTRY = 'kube-ca';

export const FULL_CLUSTER_STATE = { namespace: 'kube-system', name: 'full-cluster-state', key: 'full-cluster-state' } as const;

export interface CertificatePKI {
  certificatePEM?: string;
  keyPEM?: string;
  name?: string;
  path?: string;
  [field: string]: unknown;
}
interface State {
  certificatesBundle?: Record<string, CertificatePKI>;
  [field: string]: unknown;
}
export interface FullState {
  desiredState?: State;
  currentState?: State;
  [field: string]: unknown;
}

export class RkeStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RkeStateError';
  }
}

export function parseFullState(text: string): FullState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RkeStateError('full-cluster-state is not JSON');
  }
  if (!parsed || typeof parsed !== 'object') throw new RkeStateError('full-cluster-state is not a JSON object');
  const s = parsed as FullState;
  if (!s.currentState?.certificatesBundle && !s.desiredState?.certificatesBundle) {
    throw new RkeStateError('full-cluster-state has no certificatesBundle in currentState or desiredState');
  }
  return s;
}

/** The entry as deployed: currentState's, else desiredState's. */
function entryOf(state: FullState, name: string): CertificatePKI | undefined {
  return state.currentState?.certificatesBundle?.[name] ?? state.desiredState?.certificatesBundle?.[name];
}

function entryNames(state: FullState): string[] {
  return [...new Set([...Object.keys(state.currentState?.certificatesBundle ?? {}), ...Object.keys(state.desiredState?.certificatesBundle ?? {})])].sort();
}

// Bundle entry names are the file names without ".pem" (kube-node ↔
// /etc/kubernetes/ssl/kube-node.pem, kube-etcd-10-0-0-1 ↔ kube-etcd-10-0-0-1.pem).
const baseName = (path: string): string => path.slice(path.lastIndexOf('/') + 1).replace(/\.pem$/, '');

function matcher(spec: CertFile): RegExp {
  return templatePattern(baseName(spec.cert!));
}

interface InScope {
  readonly name: string;
  readonly spec: CertFile;
  readonly caName: string;
}

// Entries RKE copies from cluster.yml (external etcd's kube-etcd-client and
// kube-etcd-client-ca, see the catalog's userProvided): never a node's
// kube-etcd-<ip>, never issued, whatever the scope.
const USER_PROVIDED = new Set(rkeCatalog.userProvided.map((u) => u.stateEntry));

function matching(state: FullState, specs: readonly CertFile[]): InScope[] {
  const out: InScope[] = [];
  for (const name of entryNames(state)) {
    if (USER_PROVIDED.has(name)) continue;
    const spec = specs.find((s) => s.cert && s.renewal.kind === 'sign' && matcher(s).test(name));
    if (!spec || spec.renewal.kind !== 'sign') continue;
    out.push({ name, spec, caName: baseName(spec.renewal.ca.cert) });
  }
  return out;
}

/**
 * The state entries a run of these services renews on the hosts (scope All:
 * also the all-only files), each with its catalog entry. These go into the
 * bundle Secret.
 */
export function entriesInScope(state: FullState, scope: 'All' | readonly string[]): InScope[] {
  return matching(state, scope === 'All' ? allFiles(rkeCatalog) : scope.flatMap((s) => rkeCatalog.services[s]?.files ?? []));
}

/**
 * The state entries that live on no host and a rotation of all services also
 * renews (kube-admin; the catalog's stateOnlyFiles). Written to the state by
 * the controller at commit, never into the bundle Secret.
 */
export function stateOnlyEntriesInScope(state: FullState, scope: 'All' | readonly string[]): InScope[] {
  return scope === 'All' ? matching(state, rkeCatalog.stateOnlyFiles) : [];
}

export interface IssuedPair {
  readonly certPem: string;
  readonly keyPem: string;
  readonly serial: string;
  readonly notAfter: Date;
}

/**
 * Issues every certificate in scope once: same subject, SANs and usages as the
 * state's entry (its extensions are carried), a new key of the same type,
 * validity by the RKE profile, signed by the CA from the state. The CA key is
 * only held (as a non-extractable CryptoKey) for the duration of this call.
 */
export async function issueBundle(stateText: string, scope: 'All' | readonly string[], now: Date): Promise<Map<string, IssuedPair>> {
  const state = parseFullState(stateText);
  const wanted = entriesInScope(state, scope);
  if (wanted.length === 0) {
    const names = scope === 'All' ? 'any service' : scope.join(', ');
    const provided = rkeCatalog.userProvided.filter((u) => scope !== 'All' && scope.includes(u.service) && entryOf(state, u.stateEntry));
    if (provided.length > 0) {
      throw new RkeStateError(
        `full-cluster-state holds no certificate of ${names} to rotate: this cluster uses external etcd, whose client certificates (${provided
          .map((u) => `${u.stateEntry} from ${u.source}`)
          .join(', ')}) come from cluster.yml services.etcd and are not rotated by RKE either (rke cert rotate re-reads them from cluster.yml); renew them where the external etcd's CA is, then update cluster.yml and run rke up`,
      );
    }
    throw new RkeStateError(`full-cluster-state holds no certificate of ${names}`);
  }
  return issueEntries(state, wanted, now);
}

/**
 * The state-only certificates of this scope (kube-admin when scope is All),
 * issued like the bundle's. Empty for a Service scope, or a state without them.
 */
export async function issueStateOnly(stateText: string, scope: 'All' | readonly string[], now: Date): Promise<Map<string, IssuedPair>> {
  const state = parseFullState(stateText);
  return issueEntries(state, stateOnlyEntriesInScope(state, scope), now);
}

async function issueEntries(state: FullState, wanted: readonly InScope[], now: Date): Promise<Map<string, IssuedPair>> {
  const cas = new Map<string, Promise<SigningCa>>();
  const caFor = (caName: string): Promise<SigningCa> => {
    if (!cas.has(caName)) {
      const e = entryOf(state, caName);
      if (!e?.certificatePEM || !e.keyPEM) throw new RkeStateError(`full-cluster-state: ${caName} has no certificatePEM/keyPEM to sign with`);
      cas.set(caName, loadSigningCa(e.certificatePEM, `full-cluster-state:${caName}`, e.keyPEM, `full-cluster-state:${caName} key`));
    }
    return cas.get(caName)!;
  };
  const out = new Map<string, IssuedPair>();
  for (const w of wanted) {
    const e = entryOf(state, w.name)!;
    if (!e.certificatePEM || !e.keyPEM) throw new RkeStateError(`full-cluster-state: ${w.name} has no certificatePEM/keyPEM`);
    const renewed = await renewCertificate({
      certText: e.certificatePEM,
      certFile: `full-cluster-state:${w.name}`,
      keyText: e.keyPEM,
      keyFile: `full-cluster-state:${w.name} key`,
      ca: await caFor(w.caName),
      validity: w.spec.validity,
      chained: w.spec.chained,
      now,
    });
    out.set(w.name, { certPem: renewed.certPem, keyPem: renewed.keyPem, serial: renewed.serial, notAfter: renewed.notAfter });
  }
  return out;
}

// The run's bundle at rest (the controller's Secret, between issuing and
// committing; it outlives a controller restart) is sealed with a key derived
// from kube-ca's private key (as full-cluster-state holds it) and bound to the
// run: whoever can open it could sign these certificates anyway, and no one
// else, agents included, can read a key from it.
const atRestContext = (runId: string): string => `rke-bundle ${runId}`;

/** kube-ca's private key from the state (DER, PKCS#8): the secret the bundle at rest is sealed with. */
export function bundleSealingSecret(stateText: string): Buffer {
  const e = entryOf(parseFullState(stateText), CA_ENTRY);
  if (!e?.keyPEM) throw new RkeStateError(`full-cluster-state: ${CA_ENTRY} has no keyPEM to seal the run's bundle with`);
  try {
    return createPrivateKey(e.keyPEM).export({ type: 'pkcs8', format: 'der' });
  } catch {
    throw new RkeStateError(`full-cluster-state: ${CA_ENTRY}.keyPEM is not a private key`);
  }
}

type Pairs = ReadonlyMap<string, { certPem: string; keyPem: string }>;

function pairsToJson(pairs: Pairs): Buffer {
  const o: Record<string, { certPem: string; keyPem: string }> = {};
  for (const name of [...pairs.keys()].sort()) o[name] = { certPem: pairs.get(name)!.certPem, keyPem: pairs.get(name)!.keyPem };
  return Buffer.from(JSON.stringify(o));
}

/** The pairs a sealed box held, by entry name. Refuses anything but name → {certPem, keyPem}. */
export function pairsFromJson(bytes: Buffer, what: string): Map<string, { certPem: string; keyPem: string }> {
  let o: unknown;
  try {
    o = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RkeStateError(`${what} is not JSON`);
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new RkeStateError(`${what} is not an object of certificate pairs`);
  const out = new Map<string, { certPem: string; keyPem: string }>();
  for (const [name, p] of Object.entries(o as Record<string, unknown>)) {
    const pair = p as { certPem?: unknown; keyPem?: unknown } | null;
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(name)) throw new RkeStateError(`${what}: entry ${JSON.stringify(name).slice(0, 80)} is not a certificate name`);
    if (typeof pair?.certPem !== 'string' || typeof pair.keyPem !== 'string') throw new RkeStateError(`${what}: entry ${name} is not a certificate and key pair`);
    out.set(name, { certPem: pair.certPem, keyPem: pair.keyPem });
  }
  return out;
}

/** Bundle Secret data: the issued pairs sealed for this run (keys `nonce` and `ciphertext`, each base64 as Secret data is). */
export function bundleSecretData(issued: Pairs, secret: Buffer, runId: string): Record<string, string> {
  return sealWithSecret(secret, pairsToJson(issued), atRestContext(runId));
}

/** The pairs of a bundle Secret's data, opened with the secret it was sealed with. */
export function bundleFromSecretData(data: Readonly<Record<string, string>> | undefined, secret: Buffer, runId: string): Map<string, { certPem: string; keyPem: string }> {
  const { nonce, ciphertext } = data ?? {};
  if (!nonce || !ciphertext) throw new RkeStateError('the bundle Secret has no nonce/ciphertext (made by another version?)');
  let bytes: Buffer;
  try {
    bytes = openWithSecret(secret, { nonce, ciphertext }, atRestContext(runId));
  } catch (e) {
    throw new RkeStateError(`the bundle Secret does not open with kube-ca's key for run ${runId}: ${(e as Error).message} (kube-ca changed since it was issued?)`);
  }
  return pairsFromJson(bytes, 'the bundle Secret');
}

// Which of the run's certificates a node gets: what RKE itself deploys to a
// node of those roles (pki/util.go getCertKeys, pki/services.go
// GenerateRKENodeCerts): kube-node and kube-proxy everywhere, every
// kube-etcd-<ip> on every etcd node, the control-plane pairs on control-plane
// nodes; kube-kubelet-<ip> (generate_serving_certificate) for every host on
// every node, as RKE does. By the catalog's roles, never by what a node asks.
export function entriesForRoles(names: Iterable<string>, roles: readonly NodeRole[]): string[] {
  const specs = allFiles(rkeCatalog);
  return [...names]
    .filter((name) => specs.some((s) => s.cert && matcher(s).test(name) && s.roles.some((r) => roles.includes(r))))
    .sort();
}

const nodeContext = (runId: string, nodeName: string): string => `rke-bundle ${runId} node ${nodeName}`;

/** The pairs `names` of the run, sealed to one node's agent key: only that agent process can open them. */
export function sealForNode(issued: Pairs, names: readonly string[], recipientKey: SealingPublicKey, runId: string, nodeName: string): SealedBox {
  const subset = new Map(names.map((n) => [n, issued.get(n)!] as const));
  return sealTo(recipientKey, pairsToJson(subset), nodeContext(runId, nodeName));
}

/** The agent's side: the pairs sealed to its key for this run and node. */
export function openForNode(box: SealedBox, own: SealingKeyPair, runId: string, nodeName: string): Map<string, { certPem: string; keyPem: string }> {
  return pairsFromJson(openSealed(box, own, nodeContext(runId, nodeName)), 'the sealed bundle');
}

/**
 * One name for every run's bundle: one rotation runs at a time (the slot), so
 * one bundle exists at a time. Only the controller reads it; agents get their
 * node's pairs sealed to their own key in their NodeRotation (sealedBundle).
 * Which run a bundle belongs to is its BUNDLE_RUN_ANNOTATION (the
 * NodeRotation's runID), and the run is also bound into its sealing.
 */
export const BUNDLE_SECRET_NAME = 'certrotator-rke-bundle';
export const BUNDLE_RUN_ANNOTATION = 'certrotator.io/run-id';

/** Serial of every certificate entry in the state (currentState first), for checks and reports. */
export function stateSerials(stateText: string): Map<string, string> {
  const state = parseFullState(stateText);
  const out = new Map<string, string>();
  for (const name of entryNames(state)) {
    const pem = entryOf(state, name)?.certificatePEM;
    if (!pem) continue;
    try {
      out.set(name, serialOf(new X509Certificate(pem)));
    } catch {
      // Not ours to judge: an entry we cannot parse is left alone.
    }
  }
  return out;
}

function replaceAllLiteral(text: string, from: string, to: string): { text: string; count: number } {
  const parts = text.split(from);
  return { text: parts.join(to), count: parts.length - 1 };
}

/**
 * The state with the issued entries' certificatePEM/keyPEM replaced in BOTH
 * desiredState and currentState (and the same pair where an entry's config
 * embeds it: kube-admin's kubeconfig), every other byte unchanged. Proven, not
 * assumed: the result is parsed and compared with the original with exactly
 * those fields swapped; anything else different is refused.
 */
export function updateFullState(stateText: string, issued: ReadonlyMap<string, { certPem: string; keyPem: string }>): string {
  const state = parseFullState(stateText);
  let text = stateText;
  const expected = JSON.parse(stateText) as FullState;
  for (const [name, pair] of issued) {
    let seen = false;
    for (const which of ['desiredState', 'currentState'] as const) {
      const e = state[which]?.certificatesBundle?.[name];
      if (!e) continue;
      seen = true;
      const exp = expected[which]!.certificatesBundle![name]!;
      for (const [field, value] of [['certificatePEM', pair.certPem], ['keyPEM', pair.keyPem]] as const) {
        const old = e[field];
        if (typeof old !== 'string' || old === '') throw new RkeStateError(`full-cluster-state: ${which}.${name}.${field} is missing`);
        exp[field] = value;
        if (old === value) continue;
        const r = replaceAllLiteral(text, JSON.stringify(old), JSON.stringify(value));
        // Zero: written already by an earlier replacement of the same value (desired == current), or encoded differently (checked below).
        text = r.text;
        // kube-admin's `config` is the admin kubeconfig with the pair embedded
        // (client-certificate-data / client-key-data, base64 of the PEM:
        // pki/services.go GenerateKubeAdminCertificate, pki/kubeconfig.go
        // GetKubeConfigX509WithData); RKE's own rotation rewrites it with the
        // new pair, so the old key must not stay behind in it.
        const oldB64 = Buffer.from(old).toString('base64');
        if (typeof exp.config === 'string' && exp.config.includes(oldB64)) {
          const newB64 = Buffer.from(value).toString('base64');
          exp.config = exp.config.split(oldB64).join(newB64);
          text = replaceAllLiteral(text, oldB64, newB64).text;
        }
      }
    }
    if (!seen) throw new RkeStateError(`full-cluster-state has no entry ${name}`);
  }
  let result: unknown;
  try {
    result = JSON.parse(text);
  } catch {
    throw new RkeStateError('updating full-cluster-state produced invalid JSON; nothing written');
  }
  if (!isDeepStrictEqual(result, expected)) {
    throw new RkeStateError('full-cluster-state could not be updated in place (an entry is encoded in a way this version does not expect); nothing written');
  }
  return text;
}

/** Does the state already hold exactly these certificates (both states)? The write's idempotency check. */
export function stateHolds(stateText: string, issued: ReadonlyMap<string, { certPem: string; keyPem: string }>): boolean {
  const state = parseFullState(stateText);
  for (const [name, pair] of issued) {
    for (const which of ['desiredState', 'currentState'] as const) {
      const e = state[which]?.certificatesBundle?.[name];
      if (e && (e.certificatePEM !== pair.certPem || e.keyPEM !== pair.keyPem)) return false;
    }
  }
  return true;
}
