// Discovery of Secret-backed serving certificates, as a pure function over
// what cluster-read.ts fetched: from each front (a webhook configuration's
// webhook, an APIService, a CRD's conversion webhook) to the Service it calls,
// the pods behind that Service, the workload that owns them, the Secret they
// mount that holds the serving pair, and the CA that signed it.
//
// The API server trusts the endpoint through the front's caBundle, not through
// anything in the Secret, so the chain is followed the way the API server and
// the kubelet would: Service selector (or the EndpointSlices of a Service
// without one) → pods → their Secret volumes. The CA is looked for where
// projects put it (caSecretCandidates in known-layouts.ts); "unknown" is an answer, not a guess.
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import {
  BUILT_IN_SECRET_TARGETS,
  MAX_LISTED_SECRET_TARGETS,
  MAX_LISTED_UNRESOLVED,
  type BuiltInSecretTarget,
  type FrontKind,
  type SecretAction,
  type SecretPlanStatus,
  type SecretTargetsSpec,
  type SecretTargetStatus,
} from '../../api/secret-targets.js';
import { rfc3339 } from '../cascade.js';
import { matchesSelector } from '../plan.js';
import { BUILT_IN, SERVING_PAIR_KEYS, CA_SECRET_ANNOTATION, CERT_MANAGER_ANNOTATION, caSecretCandidates, serviceDnsName } from './known-layouts.js';

export interface ServiceRef {
  namespace: string;
  name: string;
}

/** One webhook of a configuration, an APIService or a CRD conversion webhook that calls a Service. */
export interface FrontInfo {
  kind: FrontKind;
  name: string;
  service: ServiceRef;
  /** The caBundle, decoded (PEM); undefined when empty. */
  caBundle?: string;
}

export interface ServiceInfo extends ServiceRef {
  /** spec.selector; undefined for a Service whose endpoints are managed by hand. */
  selector?: Record<string, string>;
  /** Pods named by the targetRefs of the Service's EndpointSlices. */
  endpointPods: string[];
}

export interface PodInfo {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** The controlling owner as found on the pod (a ReplicaSet is resolved through replicaSetOwners). */
  owner?: { kind: string; name: string };
  /** Secrets mounted as volumes (secret and projected sources). */
  secretNames: string[];
}

export interface SecretInfo {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Base64 values, only of the keys discovery reads (SERVING_PAIR_KEYS). */
  data: Record<string, string>;
}

export interface DiscoveryInput {
  fronts: FrontInfo[];
  services: ServiceInfo[];
  pods: PodInfo[];
  /** "namespace/name" of a ReplicaSet → its controlling owner (a Deployment). */
  replicaSetOwners: Map<string, { kind: string; name: string }>;
  secrets: SecretInfo[];
  now: Date;
}

/** A front that could not be followed to a Secret, and why. */
export interface Unresolved {
  front: string;
  reason: string;
}

/** Where a CA and its key are: a Secret and the two data keys (the run reads them again when it renews). */
export interface CaLocation {
  namespace: string;
  name: string;
  certKey: string;
  keyKey: string;
}

/** What a run needs of a target beyond its status: where the CA is (or where the owner keeps it), the Services its fronts call, the fronts its owner registers again. */
export interface Renewal {
  ca: CaLocation;
  services: ServiceRef[];
  removes?: string[];
}

export interface DiscoveryResult {
  plan: SecretPlanStatus;
  /** Every target in scope, the earliest to expire first (plan.targets is its head). */
  targets: SecretTargetStatus[];
  unresolved: Unresolved[];
  /** "namespace/name" of each RenewInPlace or Regenerate target's Secret → how a run takes it. */
  renewals: Map<string, Renewal>;
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;
const frontName = (f: { kind: string; name: string }): string => `${f.kind}/${f.name}`;

interface Candidate {
  secret: SecretInfo;
  fronts: FrontInfo[];
  workload?: string;
  builtIn?: BuiltInSecretTarget;
  note?: string;
}

export function discoverSecretTargets(input: DiscoveryInput, spec: SecretTargetsSpec): DiscoveryResult {
  const secrets = new Map(input.secrets.map((s) => [key(s.namespace, s.name), s]));
  const services = new Map(input.services.map((s) => [key(s.namespace, s.name), s]));
  const podsByNamespace = groupBy(input.pods, (p) => p.namespace);
  const builtIns = new Set<string>(spec.builtIn ?? []);
  const named = {
    webhooks: new Set(spec.webhookConfigurations ?? []),
    apiServices: new Set(spec.apiServices ?? []),
    crds: new Set(spec.conversionWebhooks ?? []),
    secrets: new Set((spec.secretRefs ?? []).map((r) => key(r.namespace, r.name))),
  };
  const namesSomething =
    named.webhooks.size + named.apiServices.size + named.crds.size + named.secrets.size + builtIns.size > 0;
  /** Whether spec.secrets names this front (by kind and name), Secret ("ns/name") or built-in target. */
  const isNamed = (kind: string, name: string): boolean => {
    if (kind === 'ValidatingWebhookConfiguration' || kind === 'MutatingWebhookConfiguration') return named.webhooks.has(name);
    if (kind === 'APIService') return named.apiServices.has(name);
    if (kind === 'CustomResourceDefinition') return named.crds.has(name);
    if (kind === 'Secret') return named.secrets.has(name);
    return kind === 'builtIn' && builtIns.has(name);
  };

  const candidates = new Map<string, Candidate>();
  const unresolved: { kind: string; name: string; reason: string }[] = [];
  const candidate = (secret: SecretInfo): Candidate => {
    const k = key(secret.namespace, secret.name);
    let c = candidates.get(k);
    if (!c) candidates.set(k, (c = { secret, fronts: [] }));
    return c;
  };

  for (const front of input.fronts) {
    // A front that calls into a namespace outside spec.secrets.namespaces cannot reach a Secret in scope (pods mount their own namespace's Secrets).
    if (spec.namespaces && !spec.namespaces.includes(front.service.namespace)) continue;
    const found = followFront(front, services, podsByNamespace, secrets, input.replicaSetOwners);
    if ('reason' in found) {
      unresolved.push({ kind: front.kind, name: front.name, reason: found.reason });
      continue;
    }
    const c = candidate(found.secret);
    c.fronts.push(front);
    c.workload ??= found.workload;
    c.note ??= found.note;
  }
  for (const ref of spec.secretRefs ?? []) {
    const s = secrets.get(key(ref.namespace, ref.name));
    if (!s) unresolved.push({ kind: 'Secret', name: key(ref.namespace, ref.name), reason: 'named in spec.secrets.secretRefs but not found' });
    else candidate(s);
  }
  for (const b of BUILT_IN_SECRET_TARGETS) {
    const layout = BUILT_IN[b];
    const s = secrets.get(key(layout.secret.namespace, layout.secret.name));
    if (s) candidate(s).builtIn = b;
    else if (builtIns.has(b)) unresolved.push({ kind: 'builtIn', name: b, reason: `Secret ${key(layout.secret.namespace, layout.secret.name)} not found` });
  }

  const inScope = (c: Candidate): boolean => {
    if (spec.namespaces && !spec.namespaces.includes(c.secret.namespace)) return false;
    if (spec.selector && !matchesSelector(c.secret.labels, spec.selector)) return false;
    if (!namesSomething) return c.fronts.length > 0 || c.builtIn !== undefined;
    return (
      (c.builtIn !== undefined && isNamed('builtIn', c.builtIn)) ||
      isNamed('Secret', key(c.secret.namespace, c.secret.name)) ||
      c.fronts.some((f) => isNamed(f.kind, f.name))
    );
  };

  const renewals = new Map<string, Renewal>();
  const targets = [...candidates.values()]
    .filter(inScope)
    .map((c) => {
      const { target, ca } = judge(c, secrets, input.now);
      const services = [...new Map(c.fronts.map((f) => [key(f.service.namespace, f.service.name), f.service])).values()];
      if (target.action === 'RenewInPlace' && ca?.location) renewals.set(key(c.secret.namespace, c.secret.name), { ca: ca.location, services });
      if (target.action === 'Regenerate' && c.builtIn) {
        const layout = BUILT_IN[c.builtIn];
        renewals.set(key(c.secret.namespace, c.secret.name), { ca: layout.ca, services, removes: layout.reregisters.filter((f) => target.fronts.includes(f)) });
      }
      return target;
    })
    .sort(byUrgency);
  const counts = { renewInPlace: 0, regenerate: 0, leaveAlone: 0, cannotRenew: 0 };
  for (const t of targets) counts[COUNT_FIELD[t.action]]++;
  // A front nobody asked about is not this rotation's problem when names were given.
  const reported: Unresolved[] = (namesSomething ? unresolved.filter((u) => isNamed(u.kind, u.name)) : unresolved).map((u) => ({ front: frontName(u), reason: u.reason }));
  return {
    plan: {
      total: targets.length,
      ...counts,
      targets: targets.slice(0, MAX_LISTED_SECRET_TARGETS),
      ...(reported.length ? { unresolved: reported.slice(0, MAX_LISTED_UNRESOLVED), unresolvedCount: reported.length } : {}),
    },
    targets,
    unresolved: reported,
    renewals,
  };
}

const COUNT_FIELD: Record<SecretAction, 'renewInPlace' | 'regenerate' | 'leaveAlone' | 'cannotRenew'> = {
  RenewInPlace: 'renewInPlace',
  Regenerate: 'regenerate',
  LeaveAlone: 'leaveAlone',
  CannotRenew: 'cannotRenew',
};

/** Expired and soonest first; targets without a readable certificate first of all (they need a person). */
function byUrgency(a: SecretTargetStatus, b: SecretTargetStatus): number {
  const ta = a.notAfter ? Date.parse(a.notAfter) : -Infinity;
  const tb = b.notAfter ? Date.parse(b.notAfter) : -Infinity;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return key(a.secret.namespace, a.secret.name) < key(b.secret.namespace, b.secret.name) ? -1 : 1;
}

type Followed = { secret: SecretInfo; workload?: string; note?: string } | { reason: string };

function followFront(
  front: FrontInfo,
  services: Map<string, ServiceInfo>,
  podsByNamespace: Map<string, PodInfo[]>,
  secrets: Map<string, SecretInfo>,
  replicaSetOwners: Map<string, { kind: string; name: string }>,
): Followed {
  const svcKey = key(front.service.namespace, front.service.name);
  const service = services.get(svcKey);
  if (!service) return { reason: `it calls Service ${svcKey}, which does not exist` };
  const inNamespace = podsByNamespace.get(service.namespace) ?? [];
  const endpointPods = new Set(service.endpointPods);
  const pods = inNamespace.filter(
    (p) => endpointPods.has(p.name) || (service.selector !== undefined && Object.keys(service.selector).length > 0 && matchesSelector(p.labels, { matchLabels: service.selector })),
  );
  if (pods.length === 0) return { reason: `no pods behind Service ${svcKey} (neither its selector nor its EndpointSlices name one)` };

  const mounted = [...new Set(pods.flatMap((p) => p.secretNames))].sort();
  const pairs = mounted.map((n) => secrets.get(key(service.namespace, n))).filter((s): s is SecretInfo => s !== undefined && servingPairOf(s) !== undefined);
  if (pairs.length === 0) {
    return { reason: `the pods behind Service ${svcKey} mount no Secret with a serving pair (${SERVING_PAIR_KEYS.map((k) => `${k.cert}/${k.key}`).join(', ')})${mounted.length ? `; they mount ${mounted.join(', ')}` : ''}` };
  }
  // Several serving pairs mounted: the one made for this Service's DNS name, else the one the caBundle trusts.
  const dns = new Set([serviceDnsName(service), `${serviceDnsName(service)}.cluster.local`]);
  const forService = pairs.filter((s) => servingLeafOf(s)?.subjectAltName?.split(', ').some((n) => dns.has(n.replace(/^DNS:/, ''))));
  const trusted = pairs.filter((s) => trustedBy(servingLeafOf(s), front.caBundle));
  const chosen = forService[0] ?? trusted[0] ?? pairs[0]!;
  const note =
    pairs.length > 1 && forService.length !== 1
      ? `the pods mount ${pairs.length} Secrets with a serving pair (${pairs.map((s) => s.name).join(', ')}); chose ${chosen.name}`
      : undefined;
  return { secret: chosen, workload: workloadOf(pods, replicaSetOwners), ...(note ? { note } : {}) };
}

function workloadOf(pods: PodInfo[], replicaSetOwners: Map<string, { kind: string; name: string }>): string | undefined {
  const owners = new Set<string>();
  for (const p of pods) {
    if (!p.owner) continue;
    const owner = p.owner.kind === 'ReplicaSet' ? (replicaSetOwners.get(key(p.namespace, p.owner.name)) ?? p.owner) : p.owner;
    owners.add(`${owner.kind}/${owner.name}`);
  }
  return [...owners].sort()[0];
}

/** The keys of the Secret's serving pair, by the first layout it has both keys of. */
export function servingPairOf(s: SecretInfo): (typeof SERVING_PAIR_KEYS)[number] | undefined {
  return SERVING_PAIR_KEYS.find((k) => s.data[k.cert] && s.data[k.key]);
}

const leafCache = new WeakMap<SecretInfo, X509Certificate | null>();
/** The first certificate of the Secret's serving pair, or undefined when it has none readable (cached per object). */
export function servingLeafOf(s: SecretInfo): X509Certificate | undefined {
  let cert = leafCache.get(s);
  if (cert === undefined) {
    const pair = servingPairOf(s);
    cert = pair ? firstCertificate(decode(s.data[pair.cert]!)) : null;
    leafCache.set(s, cert);
  }
  return cert ?? undefined;
}

/** A Secret or caBundle value as text; an absent value is empty. */
export const decode = (b64: string | undefined): string => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : '');

/** Every readable certificate of a PEM text, in order. */
export function certificatesIn(pem: string | undefined): X509Certificate[] {
  if (!pem) return [];
  const out: X509Certificate[] = [];
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)) {
    try {
      out.push(new X509Certificate(m[0]));
    } catch {
      // A corrupt block in a bundle is skipped: the others may still be the CA.
    }
  }
  return out;
}

function firstCertificate(pem: string): X509Certificate | null {
  return certificatesIn(pem)[0] ?? null;
}

/** Signature verification, not issuer-name matching (every RKE2 cluster has a CA of the same name). */
export function issuedBy(leaf: X509Certificate, ca: X509Certificate): boolean {
  return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
}

function trustedBy(leaf: X509Certificate | undefined, bundle: string | undefined): boolean {
  return leaf !== undefined && certificatesIn(bundle).some((ca) => issuedBy(leaf, ca));
}

interface FoundCa {
  where: string;
  cert: X509Certificate;
  keyAvailable: boolean;
  /** Set when the CA came from a Secret (not only a caBundle). */
  location?: CaLocation;
}

/**
 * The CA that signed `leaf`: in the order of caSecretCandidates, the first place whose
 * certificate verifies the leaf's signature, preferring one that also holds
 * the CA's key; otherwise a caBundle or the Secret's own ca.crt that verifies
 * it (known, but without a key).
 */
function findCa(c: Candidate, leaf: X509Certificate, secrets: Map<string, SecretInfo>): FoundCa | undefined {
  let withoutKey: FoundCa | undefined;
  for (const ref of caSecretCandidates(c.secret, c.builtIn)) {
    const s = secrets.get(key(ref.namespace, ref.name));
    if (!s) continue;
    for (const layout of SERVING_PAIR_KEYS) {
      for (const [certKey, keyKey] of [[layout.cert, layout.key], [layout.ca, layout.caKey]] as const) {
        const cert = firstCertificate(decode(s.data[certKey]));
        if (!cert || !issuedBy(leaf, cert)) continue;
        const found = { where: `${key(s.namespace, s.name)} ${certKey}`, cert, keyAvailable: keyMatches(s.data[keyKey], cert), location: { namespace: s.namespace, name: s.name, certKey, keyKey } };
        if (found.keyAvailable) return found;
        withoutKey ??= found;
      }
    }
  }
  if (withoutKey) return withoutKey;
  for (const f of c.fronts) {
    const ca = certificatesIn(f.caBundle).find((x) => issuedBy(leaf, x));
    if (ca) return { where: `caBundle of ${frontName(f)} only`, cert: ca, keyAvailable: false };
  }
  return undefined;
}

/** The key is present and is the private half of `cert` (a key of another CA would sign certificates no one trusts). */
function keyMatches(b64: string | undefined, cert: X509Certificate): boolean {
  if (!b64) return false;
  try {
    const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
    return spki(createPublicKey(createPrivateKey(decode(b64)))).equals(spki(cert.publicKey));
  } catch {
    // An unreadable key is no key; its bytes never reach a message.
    return false;
  }
}

const DAY = 86_400_000;

function judge(c: Candidate, secrets: Map<string, SecretInfo>, now: Date): { target: SecretTargetStatus; ca?: FoundCa } {
  const leaf = servingLeafOf(c.secret);
  const ca = leaf ? findCa(c, leaf, secrets) : undefined;
  return { target: judgeWith(c, leaf, ca, now), ...(ca ? { ca } : {}) };
}

function judgeWith(c: Candidate, leaf: X509Certificate | undefined, ca: FoundCa | undefined, now: Date): SecretTargetStatus {
  const base = {
    secret: { namespace: c.secret.namespace, name: c.secret.name },
    fronts: [...new Set(c.fronts.map(frontName))].sort().slice(0, 16),
    ...(c.workload ? { workload: c.workload } : {}),
  };
  const pair = servingPairOf(c.secret);
  if (!leaf || !pair) {
    const what = pair ? `${pair.cert} holds no readable certificate` : `it has no serving pair (${SERVING_PAIR_KEYS.map((k) => `${k.cert}/${k.key}`).join(', ')})`;
    return { ...base, ca: 'unknown', caKeyAvailable: false, caBundleCurrent: false, action: 'CannotRenew', reason: `Secret ${key(c.secret.namespace, c.secret.name)}: ${what}` };
  }
  const notAfter = rfc3339(new Date(leaf.validTo));
  const caBundleCurrent = c.fronts.every((f) => trustedBy(leaf, f.caBundle));
  const common = { ...base, notAfter, ca: ca?.where ?? 'unknown', caKeyAvailable: ca?.keyAvailable ?? false, caBundleCurrent };
  const withNote = (reason: string): string => (c.note ? `${reason} (${c.note})` : reason);

  const certManager = c.secret.annotations[CERT_MANAGER_ANNOTATION];
  if (certManager) {
    return { ...common, action: 'LeaveAlone', reason: withNote(`managed by the cert-manager Certificate ${c.secret.namespace}/${certManager}: cert-manager renews it (cmctl renew to force it)`) };
  }
  if (c.builtIn) {
    const layout = BUILT_IN[c.builtIn];
    const days = Math.floor((Date.parse(leaf.validTo) - now.getTime()) / DAY);
    if (ca && Date.parse(ca.cert.validTo) <= now.getTime()) {
      return { ...common, action: 'CannotRenew', reason: withNote(`its CA (${ca.where}) expired on ${ca.cert.validTo}: ${c.builtIn} makes a new CA only when ${key(layout.ca.namespace, layout.ca.name)} is absent, never for an expired one, so a regenerated certificate would be signed by it too; rotate the CA first`) };
    }
    if (days > layout.reissuesWithinDays) {
      return { ...common, action: 'LeaveAlone', reason: withNote(`expires in ${days} days: ${c.builtIn} makes a new certificate only within ${layout.reissuesWithinDays} days of expiry, and then renews it by itself; restarted now, its pods would load this one again`) };
    }
    return { ...common, action: 'Regenerate', reason: withNote(layout.procedure) };
  }
  // A pair whose halves do not belong together (tls.crt replaced alone) cannot
  // be what a server loaded; renewing it would hide the break, not mend it.
  if (!keyMatches(c.secret.data[pair.key], leaf)) {
    return { ...common, action: 'CannotRenew', reason: withNote(`${pair.key} is not the private key of the certificate in ${pair.cert}: no server can load this pair; put the matching pair back first`) };
  }
  if (leaf.checkIssued(leaf) && leaf.verify(leaf.publicKey)) {
    return { ...common, action: 'CannotRenew', reason: withNote('the certificate is self-signed: a new one would need a new caBundle in every front, which certrotator does not do yet') };
  }
  if (!ca?.keyAvailable) {
    const looked = caSecretCandidates(c.secret, c.builtIn).map((r) => key(r.namespace, r.name)).join(', ');
    const found = ca ? `its CA is known (${ca.where}) but its private key is not in the cluster` : `the CA that signed it (issuer "${leaf.issuer.replace(/\n/g, ', ')}") was not found`;
    return { ...common, action: 'CannotRenew', reason: withNote(`${found}; looked in ${looked}. Name the CA Secret (tls.crt/tls.key or ca.crt/ca.key) with the annotation ${CA_SECRET_ANNOTATION}: <namespace>/<name> on the Secret`) };
  }
  const caNotAfter = Date.parse(ca.cert.validTo);
  if (caNotAfter <= now.getTime()) {
    return { ...common, action: 'CannotRenew', reason: withNote(`its CA (${ca.where}) expired on ${new Date(caNotAfter).toISOString()}: anything it signs is refused; rotate the CA first`) };
  }
  const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
  const clamped = now.getTime() + lifetime > caNotAfter;
  const days = Math.floor((clamped ? caNotAfter - now.getTime() : lifetime) / DAY);
  return {
    ...common,
    action: 'RenewInPlace',
    reason: withNote(`new ${keyDescription(leaf)} key, same subject, SANs and usages, signed by the CA in ${ca.where}, valid ${days} days (${clamped ? "clamped to the CA's notAfter" : "the old certificate's lifetime"})`),
  };
}

function keyDescription(cert: X509Certificate): string {
  const k = cert.publicKey;
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'ec') return `EC ${d.namedCurve === 'prime256v1' ? 'P-256' : d.namedCurve === 'secp384r1' ? 'P-384' : (d.namedCurve ?? '')}`.trim();
  if (k.asymmetricKeyType === 'rsa') return `RSA-${d.modulusLength ?? '?'}`;
  return k.asymmetricKeyType ?? 'unknown';
}

function groupBy<T>(items: readonly T[], keyOf: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}
