// The controller's part of an RKE (v1) run: issue the certificates once, hand
// them to every node through one Secret, and commit them to RKE's cluster state
// when — and only when — every node has them.
//
// Order, and why:
//   1. the run's intent is written to status (as for every run);
//   2. the bundle Secret is made (one fixed name, annotated with the run's
//      runID: a restarted controller finds it, and a leftover of an earlier
//      run is recognised and replaced; owner-referenced to the
//      CertificateRotation, so it also goes with it): kube-ca's key is read from
//      full-cluster-state, used in memory to sign, and never written anywhere;
//   3. each node's NodeRotation names the bundle (spec.bundleSecretRef) and the
//      agent installs it, checking it against the CA and key on the host;
//   4. after ALL nodes are Rotated, full-cluster-state is rewritten (both
//      desiredState and currentState, fenced by resourceVersion) with the
//      bundle's certificates and, for scope All, a new kube-admin issued right
//      then (it is on no host, so it never goes in the bundle every agent can
//      read), then the bundle is deleted, then the run is written Succeeded. Each step is
//      checked before it is done again, so a pass that dies anywhere in 4 is
//      finished by the next one.
// The state is written last because it is what the next `rke up` deploys to
// every node: writing it before every node holds the new certificates would
// make it describe a cluster that does not exist (and a rolled-back node would
// then be "fixed" by `rke up` to certificates it was just rolled back from).
// On failure or rollback the state is left alone — it still describes the old
// certificates, which stay valid (same CA), so any mix of old and new on the
// nodes works and the next `rke up` converges to the old set — and the bundle
// (the only other copy of the new keys) is deleted when the run ends.
import type { CertificateRotation } from '../api/certificaterotation.js';
import type { NodeRotation } from '../api/noderotation.js';
import type { NodeRole } from '../distributions/types.js';
import { CertificateFileError } from '../pki/errors.js';
import type { ControllerDeps } from './deps.js';
import { runID } from '../api/names.js';
import { EVENT_REASONS } from './event-reasons.js';
import {
  BUNDLE_SECRET_NAME,
  bundleFromSecretData,
  bundleSealingSecret,
  bundleSecretData,
  entriesForRoles,
  issueBundle,
  issueStateOnly,
  RkeStateError,
  sealForNode,
  stateHolds,
  stateSerials,
  updateFullState,
} from './rke-bundle.js';

export interface RkeStateHandle {
  /** The full-cluster-state JSON text. */
  readonly text: string;
  /** Secret (RKE ≥ 1.6) or the older ConfigMap. */
  readonly kind: 'Secret' | 'ConfigMap';
  /** Writes new text into the same object, fenced by the resourceVersion it was read at (ConflictError when stale). */
  replace(text: string): Promise<void>;
}

/** What the controller needs of the cluster for RKE runs; wired in run.ts, faked in tests. */
export interface RkeClusterAccess {
  /** Where bundle Secrets are made (the controller's namespace). */
  readonly bundleNamespace: string;
  /** kube-system/full-cluster-state (Secret, else the ConfigMap), read fresh from the API server. */
  readState(): Promise<RkeStateHandle | undefined>;
  /** The bundle Secret's data (base64) and the runID it was made for; undefined when it does not exist. */
  getBundle(name: string): Promise<{ data: Record<string, string>; runId?: string } | undefined>;
  /** Creates the bundle Secret for run `runId`; an existing one of that name is not an error (the caller reads it back). */
  createBundle(name: string, data: Record<string, string>, runId: string, owner: CertificateRotation): Promise<void>;
  /** Deletes it; a missing one counts as deleted. */
  deleteBundle(name: string): Promise<void>;
}

export type BundleRef = { namespace: string; name: string };

export function bundleRef(rke: RkeClusterAccess): BundleRef {
  return { namespace: rke.bundleNamespace, name: BUNDLE_SECRET_NAME };
}

const runOf = (rotation: CertificateRotation, runGeneration: number): string => runID(rotation.metadata.uid!, runGeneration);

/** This run's bundle data, or undefined (none, or a leftover of another run). */
async function ownBundle(rke: RkeClusterAccess, run: string): Promise<Record<string, string> | undefined> {
  const b = await rke.getBundle(BUNDLE_SECRET_NAME);
  return b && b.runId === run ? b.data : undefined;
}

/** Every NodeRotation of an RKE run names the bundle; the name is deterministic, so a rebuilt object is the same object. */
export function withBundleRef(nrs: readonly NodeRotation[], ref: BundleRef): NodeRotation[] {
  return nrs.map((nr) => ({ ...nr, spec: { ...nr.spec, bundleSecretRef: { ...ref } } }));
}

const bundleScope = (rotation: CertificateRotation): 'All' | string[] =>
  rotation.spec.scope === 'All' ? 'All' : [rotation.spec.service!];

/**
 * Makes the run's bundle unless it exists. Issued once per run: an existing
 * Secret is never re-issued. Without a full-cluster-state in the cluster there
 * is nothing to issue from and nothing for `rke up` to revert from: the run
 * signs on each host as the CLI does (a node without the CA key then refuses),
 * and stays that way for the whole run once a node was instructed without it.
 */
export async function ensureRkeBundle(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  runGeneration: number,
  nodeRotations: readonly NodeRotation[],
): Promise<BundleRef | undefined> {
  const rke = deps.rke!;
  const ref = bundleRef(rke);
  const run = runOf(rotation, runGeneration);
  const existing = await rke.getBundle(ref.name);
  if (existing?.runId === run) return ref;
  if (nodeRotations.some((nr) => !nr.spec.bundleSecretRef)) return undefined;
  // Issued once per run: nodes already hold this run's bundle, so a second
  // issue would give the rest different shared certificates (kube-node).
  if (nodeRotations.length > 0) {
    throw new RkeStateError(`this run's bundle Secret ${ref.namespace}/${ref.name} disappeared after ${nodeRotations.length} node(s) were instructed; the remaining nodes are not started (start a new run)`);
  }
  // A leftover of an earlier run (one runs at a time, so that run is over): its keys go.
  if (existing) {
    deps.log.warn({ bundle: `${ref.namespace}/${ref.name}`, run: existing.runId ?? '?' }, 'deleting the bundle Secret an earlier run left behind');
    await rke.deleteBundle(ref.name);
  }
  const state = await rke.readState();
  if (!state) {
    deps.log.warn({}, 'kube-system/full-cluster-state (Secret or ConfigMap) not found: each RKE node signs its own certificates, nodes without the kube-ca key cannot be rotated');
    return undefined;
  }
  const issued = await issueBundle(state.text, bundleScope(rotation), deps.now());
  await rke.createBundle(ref.name, bundleSecretData(issued, bundleSealingSecret(state.text), run), run, rotation);
  // Read back: a create that met an existing Secret must have met this run's.
  if ((await rke.getBundle(ref.name))?.runId !== run) throw new Error(`the bundle Secret ${ref.namespace}/${ref.name} belongs to another run; retrying`);
  deps.log.info(
    { bundle: `${ref.namespace}/${ref.name}`, certificates: [...issued].map(([name, p]) => `${name}:${p.serial}`) },
    'issued the RKE certificates for this run',
  );
  return ref;
}

/**
 * The node step of an RKE run's hand-off: each node in flight whose agent has
 * published a sealing key (status.sealingKey) that its sealedBundle is not
 * sealed to gets the pairs RKE would deploy to a node of its roles, sealed to
 * that key. An agent that restarted publishes a new key and is sealed to again.
 * Safe to repeat: a box already sealed to the published key is left alone.
 */
export async function sealBundleForWaitingNodes(
  deps: ControllerDeps,
  rotation: CertificateRotation,
  runGeneration: number,
  nodeRotations: readonly NodeRotation[],
  // The run's own view (status.nodes as this pass decided it): a node it gave up on (timed out, skipped) gets nothing.
  inFlight: ReadonlySet<string>,
): Promise<void> {
  const run = runOf(rotation, runGeneration);
  const waiting = nodeRotations.filter(
    (nr) =>
      inFlight.has(nr.spec.nodeName) &&
      nr.spec.bundleSecretRef && nr.spec.runID === run && nr.status?.runID === run && nr.status.phase === 'Updating' && nr.status.sealingKey && nr.sealedBundle?.recipientKey !== nr.status.sealingKey,
  );
  if (waiting.length === 0) return;
  const rke = deps.rke!;
  const data = await ownBundle(rke, run);
  const state = data ? await rke.readState() : undefined;
  if (!data || !state) {
    // Deleted by hand: nothing to seal from. The node waits untouched until
    // its nodeTimeout, and the run ends Stalled naming it; this says why.
    const gone = data ? 'kube-system/full-cluster-state' : `this run's bundle Secret ${rke.bundleNamespace}/${BUNDLE_SECRET_NAME}`;
    deps.log.error({ nodes: waiting.map((nr) => nr.spec.nodeName) }, `${gone} is gone: these nodes cannot get their certificates and will time out untouched (start a new run)`);
    return;
  }
  const issued = bundleFromSecretData(data, bundleSealingSecret(state.text), run);
  for (const nr of waiting) {
    const names = entriesForRoles(issued.keys(), nr.spec.role.split(',') as NodeRole[]);
    const box = sealForNode(issued, names, nr.status!.sealingKey!, run, nr.spec.nodeName);
    await deps.write.setSealedBundle(nr.metadata.name!, { ...box, entries: names });
    deps.log.info({ node: nr.spec.nodeName, entries: names }, "sealed the node's certificates of this run to its agent's key");
  }
}

/**
 * When the run ends, the sealed boxes go from its NodeRotations: they are
 * sealed to keys the agents have dropped, so no one can open them, but no copy
 * of a key of ours, sealed or not, is left in the cluster after a run.
 */
export async function clearSealedBundles(deps: ControllerDeps, nodeRotations: readonly NodeRotation[]): Promise<void> {
  for (const nr of nodeRotations) if (nr.sealedBundle) await deps.write.setSealedBundle(nr.metadata.name!, null);
}

/**
 * Can this error never go away by retrying? (The state is unusable: no CA key,
 * not JSON, a key that does not match its certificate.) Then the nodes about
 * to start fail at once, untouched, instead of waiting out nodeTimeout.
 */
export function isPermanentIssueError(err: unknown): boolean {
  return err instanceof RkeStateError || err instanceof CertificateFileError;
}

/**
 * The last step of a succeeded RKE run, before it is written Succeeded: the
 * state takes the bundle's certificates, then the bundle goes. Safe to repeat.
 */
export async function commitRkeState(deps: ControllerDeps, rotation: CertificateRotation, runGeneration: number, nodeRotations: readonly NodeRotation[]): Promise<void> {
  const rke = deps.rke!;
  const ref = bundleRef(rke);
  const data = await ownBundle(rke, runOf(rotation, runGeneration));
  // A run whose nodes signed on their hosts (no state to issue from) has nothing to commit.
  if (!data && !nodeRotations.some((nr) => nr.spec.bundleSecretRef)) return;
  const state = await rke.readState();
  if (!state) throw new RkeStateError('kube-system/full-cluster-state disappeared before the new certificates could be written to it');
  if (data) {
    const issued = bundleFromSecretData(data, bundleSealingSecret(state.text), runOf(rotation, runGeneration));
    // stateHolds(bundle) true means the one replace below already happened,
    // kube-admin with it: a repeated pass never issues a second kube-admin.
    if (!stateHolds(state.text, issued)) {
      // kube-admin (scope All) is issued here, from the state about to be
      // written, and goes into the same replace as the bundle's certificates.
      const stateOnly = await issueStateOnly(state.text, bundleScope(rotation), deps.now());
      await state.replace(updateFullState(state.text, new Map([...issued, ...stateOnly])));
      deps.log.info({ kind: state.kind, certificates: [...issued.keys(), ...stateOnly.keys()] }, 'wrote the new certificates to kube-system/full-cluster-state');
      if (stateOnly.size > 0) tellAdminFilesStale(deps, rotation, stateOnly);
      else tellStateFileStale(deps, rotation, [...issued.keys()]);
    }
    await rke.deleteBundle(ref.name);
    return;
  }
  // No bundle: an earlier pass wrote the state and deleted it (or a person
  // deleted it). Only go on if the state holds what the nodes report.
  const serials = stateSerials(state.text);
  const mismatched: string[] = [];
  for (const nr of nodeRotations) {
    for (const f of nr.status?.files ?? []) {
      const name = f.path.slice(f.path.lastIndexOf('/') + 1).replace(/\.pem$/, '');
      if (f.newSerial && serials.has(name) && serials.get(name) !== f.newSerial) mismatched.push(`${nr.spec.nodeName}:${name}`);
    }
  }
  if (mismatched.length > 0) {
    throw new RkeStateError(
      `the run's bundle Secret ${ref.namespace}/${ref.name} is gone and full-cluster-state does not hold the certificates the nodes now use (${mismatched.slice(0, 5).join(', ')}); the next \`rke up\` would put the old ones back`,
    );
  }
}

/**
 * kube-admin is the identity in the admin's kube_config_cluster.yml; RKE
 * rewrites that file itself when it rotates (cluster/cluster.go
 * rebuildLocalAdminConfig), certrotator cannot reach it. The old certificate
 * keeps working until it expires (same kube-ca), but the local files now hold
 * a pair the cluster state no longer has, and `rke up` reads the local
 * cluster.rkestate. Serial and expiry only: no key material.
 */
// `rke up` deploys what the admin's local cluster.rkestate holds (cmd/up.go
// ReadStateFile), not the in-cluster copy: left stale, it would put the old
// certificates back on the next `rke up`.
function tellStateFileStale(deps: ControllerDeps, rotation: CertificateRotation, renewed: readonly string[]): void {
  const message =
    `${renewed.length} certificate(s) renewed in kube-system/full-cluster-state (${renewed.slice(0, 5).join(', ')}${renewed.length > 5 ? ', …' : ''}): ` +
    'your local cluster.rkestate is stale; refresh it with `rke util get-state-file` before the next `rke up`, which would otherwise deploy the old certificates again';
  deps.log.warn({ renewed }, message);
  deps.events.normal(rotation, EVENT_REASONS.rkeStateUpdated, message);
}

function tellAdminFilesStale(deps: ControllerDeps, rotation: CertificateRotation, renewed: ReadonlyMap<string, { serial: string; notAfter: Date }>): void {
  const what = [...renewed].map(([name, p]) => `${name} (serial ${p.serial}, not after ${p.notAfter.toISOString()})`).join(', ');
  const message =
    `${what} renewed in kube-system/full-cluster-state: your local kube_config_cluster.yml and cluster.rkestate are stale; ` +
    'refresh them with `rke util get-state-file` then `rke util get-kubeconfig`';
  deps.log.warn({ renewed: [...renewed.keys()] }, message);
  deps.events.normal(rotation, EVENT_REASONS.rkeKubeAdminRenewed, message);
}

/**
 * A failed RKE run leaves the state as it was, so nodes that did rotate hold
 * certificates it does not: what the user must know before the next `rke up`,
 * for the run's Stalled condition and an Event. Undefined when no node rotated.
 */
export function failedRunStateNote(nodes: readonly { name: string; phase: string }[]): string | undefined {
  const rotated = nodes.filter((n) => n.phase === 'Rotated').map((n) => n.name);
  if (rotated.length === 0) return undefined;
  return (
    `RKE: ${rotated.length} node(s) (${rotated.slice(0, 10).join(', ')}${rotated.length > 10 ? ', …' : ''}) now hold new certificates that ` +
    'kube-system/full-cluster-state does not (it is written only when every node succeeded); old and new are both valid (same kube-ca). ' +
    'The next `rke up` deploys the certificates of the state again and restarts those components; to keep the new ones instead, ' +
    'fix the failure and apply the rotation again (a new generation) until it succeeds'
  );
}

/** A run that ended without success: the bundle (the only other copy of the new keys) goes; the state stays as it is. */
export async function discardRkeBundle(deps: ControllerDeps, rotation: CertificateRotation, runGeneration: number): Promise<void> {
  const rke = deps.rke!;
  if (await ownBundle(rke, runOf(rotation, runGeneration))) await rke.deleteBundle(BUNDLE_SECRET_NAME);
}
