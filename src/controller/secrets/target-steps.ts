// One step of one Secret-backed target of a run (issue 13 §3a–§6), over the
// SecretRunCluster interface, so the same code runs against the API server
// (cluster-write.ts) and against the fake of its table test.
//
// Level-based like the node cascade: status.secretRun.targets[i].step is the
// durable cursor, written after every step. A controller that stops between a
// step's write to the cluster and its status write runs the step again, so
// every step is idempotent: Backup meets AlreadyExists and checks the copy is
// this rotation's, Renew finds its own mark on the Secret, Roll records the
// pod template's annotations (status write) before it patches them, Restore
// writes the same backup again.
//
// The order is the one that keeps the endpoint callable at every moment:
// the caBundle trusts the CA before any pod serves what it signed (Trust
// before Roll), and nothing is deleted until the API server itself has called
// the new pods (Cleanup after Verify). A failure anywhere puts back the Secret,
// the caBundle and the pod template, in that order, so the workload returns
// to its earlier pods (as `kubectl rollout undo` would) with the old pair.
//
// Regenerate (an owner that makes its own certificate, known-layouts.ts) runs
// the owner's documented procedure in the same frame: the Secret, its CA
// Secret and the webhook configurations the owner registers again are backed
// up; the Secret and those configurations are deleted; the pods are rolled,
// and the new ones make a pair and register again. The new CA is known only
// once the first new pod wrote its pair: from then on, while the pods roll,
// every front trusts it beside the old one; once verified the old one goes.
// Nothing is deleted for good until Verify.
import { X509Certificate } from 'node:crypto';
import { GROUP } from '../../api/constants.js';
import { rfc3339 } from '../cascade.js';
import type { SecretRef, SecretRunAction, SecretRunTarget, SecretStep } from '../../api/secret-targets.js';
import { parseDuration } from '../../api/duration.js';
import { describeError, isConflict, statusCode } from '../../kube/client.js';
import { normalSerial } from '../../pki/certfile.js';
import { secretBackupName } from '../../api/names.js';
import { backupOf, frontsIn, restoredFrom, BACKUP_LABELS, type SecretObject } from './backup.js';
import type { JsonPatchOp, LiveFront } from './ca-bundle.js';
import { decode, type ServiceRef } from './discovery.js';
import { callsOf, dropFromFronts, dropSupersededCa, issuerIn, keptOf, leafIn, toInfo, trustInFronts } from './front-bundles.js';
import { probeForApiService, probeForWebhook, type LiveWebhook, type NamespaceInfo, type ProbeRequest } from './probe-request.js';
import { renewServingSecret } from './renew-in-place.js';
import { ROLL_ANNOTATIONS, rollAnnotations, rolloutOf, type WorkloadState } from './rollout.js';
import { verifyServed, type Endpoint } from './verify-served.js';

/** Put on the renewed Secret: a Renew step run again after a crash finds its own work instead of renewing twice. */
export const RENEWED_BY_ANNOTATION = `${GROUP}/renewed-by`;

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** How often a waiting step (Rollout, Verify, UndoRollout) looks again. */
export const WAIT_POLL_MS = 2000;

export interface LiveWorkload extends WorkloadState {
  spec?: WorkloadState['spec'] & { template?: { metadata?: { annotations?: Record<string, string> } } };
}

/** A front as the API returns it: where its caBundles are (ca-bundle.ts), and what the probe needs. */
export type LiveFrontObject = Omit<LiveFront, 'webhooks' | 'spec'> & {
  webhooks?: (LiveWebhook & NonNullable<LiveFront['webhooks']>[number])[];
  spec?: LiveFront['spec'] & { group?: string; version?: string };
};

/** What the run does to the cluster; the controller's is cluster-write.ts. */
export interface SecretRunCluster {
  getSecret(ref: SecretRef): Promise<SecretObject | undefined>;
  /** 'exists' when a Secret of that name is already there (its content is not compared). */
  createSecret(secret: SecretObject & { metadata: { ownerReferences?: object[] } }): Promise<'created' | 'exists'>;
  /** A full replace; metadata.resourceVersion makes the API server refuse it (409) if the Secret changed since it was read. */
  updateSecret(secret: SecretObject): Promise<void>;
  /** An absent Secret is not an error. */
  deleteSecret(ref: SecretRef): Promise<void>;
  /** `workload` is Kind/name, e.g. Deployment/policy-webhook. */
  getWorkload(namespace: string, workload: string): Promise<LiveWorkload | undefined>;
  /** A merge patch of the pod template's annotations; null removes one. */
  patchTemplateAnnotations(namespace: string, workload: string, annotations: Record<string, string | null>): Promise<void>;
  /** `front` is Kind/name, as status lists it. */
  getFront(front: string): Promise<LiveFrontObject | undefined>;
  patchFront(front: string, ops: JsonPatchOp[]): Promise<void>;
  /** Regenerate only, webhook configurations only; an absent one is not an error. */
  deleteFront(front: string): Promise<void>;
  /** Puts a deleted front back as the backup holds it: created, or replaced over what the owner registered since. */
  putFront(front: string, object: object): Promise<void>;
  /** The ready addresses and port that a Service's port leads to (its EndpointSlices). */
  endpoints(service: ServiceRef, port: number): Promise<Endpoint[]>;
  namespaces(): Promise<NamespaceInfo[]>;
  /** Sends the request through the API server; rejects with the API server's message. */
  send(request: ProbeRequest): Promise<void>;
}

export interface StepContext {
  cluster: SecretRunCluster;
  owner: { name: string; uid: string; generation: number };
  now: Date;
  /** spec.strategy.nodeTimeout: how long a rollout and its verification may take. */
  nodeTimeout: string;
  /** spec.strategy.onFailure: Rollback (default) or Halt (leave the target as the failure left it). */
  onFailure?: 'Rollback' | 'Halt';
}

export interface StepResult {
  target: SecretRunTarget;
  /** Look again after this long (a waiting step); undefined: the next step may run at once. */
  waitMs?: number;
}

/**
 * Each action's steps in order (the undo steps are the same for both). Renewing in
 * place, the CA is known before the roll, so the caBundle trusts it first; an owner
 * that regenerates makes its pair (and maybe a CA) only when its new pods start.
 */
export const STEP_ORDER: Record<SecretRunAction, readonly SecretStep[]> = {
  RenewInPlace: ['Backup', 'Renew', 'Trust', 'Roll', 'Rollout', 'Verify', 'Cleanup'],
  Regenerate: ['Backup', 'Remove', 'Roll', 'Rollout', 'Reissued', 'Trust', 'Verify', 'Cleanup'],
};

const actionOf = (t: SecretRunTarget): SecretRunAction => t.action ?? 'RenewInPlace';

/** The target moved on from `step` to the step after it, with the time it began (the waiting steps are bounded from there). */
function advance(t: SecretRunTarget, step: SecretStep, now: Date, fields: Partial<SecretRunTarget>): StepResult {
  const order = STEP_ORDER[actionOf(t)];
  const next = order[order.indexOf(step) + 1];
  if (!next) throw new Error(`${step} is the last step of ${actionOf(t)}`);
  return { target: { ...t, ...fields, step: next, stepSince: now.toISOString() } };
}

const ref = (t: SecretRunTarget): string => `${t.secret.namespace}/${t.secret.name}`;
const backupRef = (t: SecretRunTarget, owner: StepContext['owner']): SecretRef => ({ namespace: t.secret.namespace, name: secretBackupName(t.secret.name, owner.name, owner.generation) });
/** Regenerate also keeps the owner's CA Secret: an owner that found it gone would make a new CA, and a rollback must give the old one back. */
const caBackupRef = (t: SecretRunTarget, owner: StepContext['owner']): SecretRef => ({ namespace: t.ca.namespace, name: secretBackupName(t.ca.name, owner.name, owner.generation) });
const caRef = (t: SecretRunTarget): SecretRef => ({ namespace: t.ca.namespace, name: t.ca.name });
/** Regenerate with the CA in a Secret of its own: that Secret is backed up too. */
const keepsCaSecret = (t: SecretRunTarget): boolean => actionOf(t) === 'Regenerate' && ref(t) !== `${t.ca.namespace}/${t.ca.name}`;
const mark = (owner: StepContext['owner']): string => `${owner.uid}/g${owner.generation}`;

async function caPemOf(ctx: StepContext, t: SecretRunTarget): Promise<string> {
  const ca = await ctx.cluster.getSecret(caRef(t));
  const pem = ca?.data?.[t.ca.certKey];
  if (!pem) throw new Error(`the CA Secret ${t.ca.namespace}/${t.ca.name} (${t.ca.certKey}) is gone`);
  return decode(pem);
}

/**
 * The CA that signed what the Secret holds now: the CA Secret's certificate, else
 * one the Secret carries after its leaf or as its ca.crt (a regenerating owner may
 * have made a new CA). Signature verification, not names: a new CA of an owner
 * usually has the old one's name. Without a readable leaf, the CA Secret's.
 */
async function issuerPemOf(ctx: StepContext, t: SecretRunTarget): Promise<string> {
  const { leaf, issuer } = await liveIssuer(ctx, t);
  if (!leaf) return caPemOf(ctx, t);
  if (!issuer) throw new Error(`no CA that signed the certificate in Secret ${ref(t)} was found (looked in ${t.ca.namespace}/${t.ca.name} ${t.ca.certKey} and in the Secret's own chain)`);
  return issuer.toString();
}

/** The certificate the Secret holds now, and the CA that signed it (issuerIn), as the cluster has them now. */
async function liveIssuer(ctx: StepContext, t: SecretRunTarget): Promise<{ leaf?: X509Certificate; issuer?: X509Certificate }> {
  const secret = await ctx.cluster.getSecret(t.secret);
  const leaf = secret ? leafIn(secret) : undefined;
  if (!leaf) return {};
  const issuer = issuerIn(secret!, await ctx.cluster.getSecret(caRef(t)), t.ca.certKey);
  return issuer ? { leaf, issuer } : { leaf };
}

/**
 * Regenerate, while the pods roll: once the owner has written its new pair (the
 * first new pod did), the CA that signed it goes into every front there is that
 * lacks it, beside the old one, so the API server trusts new and old pods alike
 * until the last old one is gone. The fronts the run deleted are not there
 * yet; Reissued waits for them and Trust checks them.
 */
async function trustWhileRolling(ctx: StepContext, t: SecretRunTarget): Promise<SecretRunTarget> {
  const { leaf, issuer } = await liveIssuer(ctx, t);
  if (!leaf || !issuer || normalSerial(leaf.serialNumber) === t.oldSerial) return t;
  const { added } = await trustInFronts(ctx.cluster, t, issuer.toString());
  return added.length ? { ...t, caAddedTo: added } : t;
}

const elapsed = (t: SecretRunTarget, now: Date): number => now.getTime() - Date.parse(t.stepSince ?? now.toISOString());

/** A step failed: roll back from Restore, or, before anything changed (Backup), stop with nothing to undo. */
function failed(t: SecretRunTarget, step: SecretStep, why: string, now: Date): StepResult {
  if (step === 'Backup') return { target: { ...t, phase: 'RolledBack', step, failedStep: step, message: `${step} failed: ${why}; nothing was changed` } };
  return { target: { ...t, phase: 'RollingBack', step: 'Restore', failedStep: step, stepSince: now.toISOString(), message: `${step} failed: ${why}` } };
}

/** The rollback itself failed: what is left, and what to put back by hand. */
function stuck(t: SecretRunTarget, step: SecretStep, why: string, owner: StepContext['owner']): StepResult {
  const backup = backupRef(t, owner);
  return {
    target: {
      ...t,
      phase: 'Failed',
      step,
      message: `${t.message ?? 'the run failed'}; the rollback failed at ${step}: ${why}. Restore by hand: the original Secret is kept in Secret ${backup.namespace}/${backup.name} (labels ${BACKUP_LABELS.of}, ${BACKUP_LABELS.rotation}); put its data back into ${ref(t)}${t.removes?.length ? `, put back ${t.removes.join(', ')} from its annotation certrotator.io/backup-of-fronts and the CA Secret ${t.ca.namespace}/${t.ca.name} from its backup` : ''}, then restore the pod template annotations of ${t.workload} and check kubectl rollout status`,
    },
  };
}

/** Runs the target's next step. Throws only for errors worth a retry (the API server unreachable); a refusal is a failed step. */
export async function stepTarget(target: SecretRunTarget, ctx: StepContext): Promise<StepResult> {
  const t: SecretRunTarget = target.phase === 'Pending' ? { ...target, phase: 'Renewing', step: 'Backup' } : target;
  const step = t.step ?? 'Backup';
  const rollingBack = t.phase === 'RollingBack';
  let result: StepResult;
  try {
    result = await STEPS[step](t, ctx);
  } catch (err) {
    if (isRetryable(err)) throw err;
    const why = describeError(err);
    result = rollingBack ? stuck(t, step, why, ctx.owner) : failed(t, step, why, ctx.now);
  }
  // onFailure: Halt: a person wants to look at the target as the failure left it, so no rollback starts.
  if (ctx.onFailure === 'Halt' && !rollingBack && result.target.phase === 'RollingBack') {
    const backup = backupRef(t, ctx.owner);
    return { target: { ...result.target, phase: 'Failed', step, message: `${result.target.message}; onFailure is Halt, so it was left as it is: the original Secret is kept in Secret ${backup.namespace}/${backup.name}` } };
  }
  return result;
}

/** Connection trouble, throttling and conflicts are retried by the work queue; anything else is the step's answer. */
function isRetryable(err: unknown): boolean {
  const code = statusCode(err);
  if (isConflict(err) || code === 429 || (code !== undefined && code >= 500)) return true;
  return code === undefined && /ECONNREFUSED|ECONNRESET|ETIMEDOUT|fetch failed|socket hang up/.test(describeError(err));
}

type Step = (t: SecretRunTarget, ctx: StepContext) => Promise<StepResult>;

const STEPS: Record<SecretStep, Step> = {
  async Backup(t, ctx) {
    const secret = await ctx.cluster.getSecret(t.secret);
    if (!secret) return failed(t, 'Backup', `Secret ${ref(t)} not found`, ctx.now);
    const leaf = leafIn(secret);
    if (!leaf) return failed(t, 'Backup', `Secret ${ref(t)} holds no readable serving certificate`, ctx.now);
    const fronts: Record<string, object> = {};
    for (const front of t.removes ?? []) {
      const live = await ctx.cluster.getFront(front);
      if (live) fronts[front] = keptOf(live);
    }
    const copies = [backupOf(secret, ctx.owner, fronts)];
    const caSecret = keepsCaSecret(t) ? await ctx.cluster.getSecret(caRef(t)) : undefined;
    if (caSecret) copies.push(backupOf(caSecret, ctx.owner));
    for (const copy of copies) {
      if ((await ctx.cluster.createSecret(copy)) === 'exists') {
        // Ours from a pass that stopped before its status write, or someone else's object under our name.
        const there = await ctx.cluster.getSecret({ namespace: copy.metadata.namespace, name: copy.metadata.name });
        const ownedBy = (there?.metadata as { ownerReferences?: { uid?: string }[] } | undefined)?.ownerReferences?.some((o) => o.uid === ctx.owner.uid);
        if (!ownedBy) return failed(t, 'Backup', `Secret ${copy.metadata.namespace}/${copy.metadata.name} exists and is not this rotation's backup`, ctx.now);
      }
    }
    const kept = copies.map((c) => `${c.metadata.namespace}/${c.metadata.name}`).join(' and ');
    return advance(t, 'Backup', ctx.now, { oldSerial: normalSerial(leaf.serialNumber), message: `backed up to Secret ${kept}${Object.keys(fronts).length ? ` (with ${Object.keys(fronts).join(', ')})` : ''}` });
  },

  async Renew(t, ctx) {
    const secret = await ctx.cluster.getSecret(t.secret);
    if (!secret) return failed(t, 'Renew', `Secret ${ref(t)} is gone`, ctx.now);
    const next = (serial: string, notAfter: Date, clampedToCa: boolean): StepResult =>
      advance(t, 'Renew', ctx.now, { serial, notAfter: rfc3339(notAfter), clampedToCa, message: `renewed: serial ${t.oldSerial} → ${serial}, notAfter ${notAfter.toISOString()}${clampedToCa ? " (clamped to the CA's notAfter)" : ''}` });
    if (secret.metadata.annotations?.[RENEWED_BY_ANNOTATION] === mark(ctx.owner)) {
      const leaf = leafIn(secret)!;
      return next(normalSerial(leaf.serialNumber), new Date(leaf.validTo), Date.parse(leaf.validTo) === Date.parse(new X509Certificate(await caPemOf(ctx, t)).validTo));
    }
    const ca = await ctx.cluster.getSecret(caRef(t));
    if (!ca) return failed(t, 'Renew', `the CA Secret ${t.ca.namespace}/${t.ca.name} is gone`, ctx.now);
    const renewed = await renewServingSecret(toInfo(secret), { secret: toInfo(ca), certKey: t.ca.certKey, keyKey: t.ca.keyKey }, ctx.now);
    await ctx.cluster.updateSecret({
      ...secret,
      metadata: { ...secret.metadata, annotations: { ...(secret.metadata.annotations ?? {}), [RENEWED_BY_ANNOTATION]: mark(ctx.owner) } },
      data: { ...(secret.data ?? {}), ...renewed.data },
    });
    return next(normalSerial(renewed.serial), renewed.notAfter, renewed.clampedToCa);
  },

  async Remove(t, ctx) {
    // The fronts first: a grant that lacks their delete stops the step before the Secret is touched.
    // The running owner may write its Secret back from memory (dynamiclistener does); the new pods decide, at Reissued.
    for (const front of t.removes ?? []) await ctx.cluster.deleteFront(front);
    await ctx.cluster.deleteSecret(t.secret);
    const removed = [`Secret ${ref(t)}`, ...(t.removes ?? [])].join(', ');
    return advance(t, 'Remove', ctx.now, { message: `deleted ${removed} for ${t.workload} to make again` });
  },

  async Reissued(t, ctx) {
    const secret = await ctx.cluster.getSecret(t.secret);
    const leaf = secret ? leafIn(secret) : undefined;
    const missing: string[] = [];
    for (const front of t.removes ?? []) if (!(await ctx.cluster.getFront(front))) missing.push(front);
    const serial = leaf ? normalSerial(leaf.serialNumber) : undefined;
    let waiting: string | undefined;
    if (!secret) waiting = `the owner has not written Secret ${ref(t)} again`;
    else if (!leaf) waiting = `Secret ${ref(t)} holds no readable serving certificate`;
    else if (serial === t.oldSerial) waiting = `Secret ${ref(t)} holds the old certificate again (serial ${serial}): the owner wrote back what it had loaded instead of making a new one`;
    else if (missing.length) waiting = `the owner has not registered ${missing.join(', ')} again`;
    if (waiting === undefined) {
      return advance(t, 'Reissued', ctx.now, { serial, notAfter: rfc3339(new Date(leaf!.validTo)), message: `regenerated by ${t.workload}: serial ${t.oldSerial} → ${serial}, notAfter ${new Date(leaf!.validTo).toISOString()}` });
    }
    if (elapsed(t, ctx.now) >= parseDuration(ctx.nodeTimeout)) return failed(t, 'Reissued', `not regenerated within nodeTimeout ${ctx.nodeTimeout}: ${waiting}`, ctx.now);
    return { target: { ...t, message: `waiting for ${t.workload}: ${waiting}` }, waitMs: WAIT_POLL_MS };
  },

  async Trust(t, ctx) {
    const { added, gone } = await trustInFronts(ctx.cluster, t, await issuerPemOf(ctx, t));
    if (gone.length) return failed({ ...t, ...(added.length ? { caAddedTo: added } : {}) }, 'Trust', `${gone.join(', ')} is gone`, ctx.now);
    return advance(t, 'Trust', ctx.now, { ...(added.length ? { caAddedTo: added } : {}), message: added.length ? `the CA added to the caBundle of ${added.join(', ')}` : 'every caBundle already trusts the CA' });
  },

  async Roll(t, ctx) {
    const w = await ctx.cluster.getWorkload(t.secret.namespace, t.workload);
    if (!w) return failed(t, 'Roll', `${t.workload} in namespace ${t.secret.namespace} not found`, ctx.now);
    // First pass: what the template carries now goes into the status before it is changed, so Undo can put it back.
    if (!t.templateBefore) {
      const a = w.spec?.template?.metadata?.annotations ?? {};
      const before = Object.fromEntries(Object.entries(ROLL_ANNOTATIONS).flatMap(([field, key]) => (a[key] ? [[field, a[key]]] : [])));
      return { target: { ...t, templateBefore: { rolled: false, ...before } } };
    }
    // Regenerate does not know the serial yet: the annotation says which one the pods replace.
    const serving = t.serial ?? `regenerate-${t.oldSerial}`;
    await ctx.cluster.patchTemplateAnnotations(t.secret.namespace, t.workload, rollAnnotations(`${ctx.owner.name}/g${ctx.owner.generation}`, serving, ctx.now));
    return advance(t, 'Roll', ctx.now, { templateBefore: { ...t.templateBefore, rolled: true }, message: `rolling ${t.workload}` });
  },

  async Rollout(t, ctx) {
    const current = actionOf(t) === 'Regenerate' ? await trustWhileRolling(ctx, t) : t;
    return waitForRollout(current, ctx, 'Rollout', (done) => advance(current, 'Rollout', ctx.now, { message: done }));
  },

  async Verify(t, ctx) {
    const problems: string[] = [];
    const called: string[] = [];
    const notProbed: string[] = [];
    const namespaces = await ctx.cluster.namespaces();
    for (const front of t.fronts) {
      const live = await ctx.cluster.getFront(front);
      if (!live) return failed(t, 'Verify', `${front} is gone`, ctx.now);
      for (const slot of callsOf(live, t.services)) {
        const endpoints = await ctx.cluster.endpoints(slot.service, slot.port);
        if (endpoints.length === 0) {
          problems.push(`${front}: Service ${slot.service.namespace}/${slot.service.name} has no ready endpoint on port ${slot.port}`);
          continue;
        }
        const verdicts = await verifyServed(endpoints, slot.service, { name: front, caBundle: decode(slot.caBundle) }, t.serial!);
        for (const v of verdicts) if (!v.ok) problems.push(`${front}: ${v.reason}`);
      }
    }
    // The API server's own call, only once every endpoint serves the new certificate.
    if (problems.length === 0) {
      for (const front of t.fronts) {
        const live = (await ctx.cluster.getFront(front))!;
        for (const probe of probesOf(front, live, t.services, namespaces)) {
          if (!probe.ok) {
            notProbed.push(probe.reason);
            continue;
          }
          const answer = await sendProbe(ctx.cluster, probe.request);
          if (answer.called) called.push(`${front} (${answer.how})`);
          else problems.push(`${front}: the API server could not call it: ${answer.how}`);
        }
      }
    }
    if (problems.length > 0) {
      const timeoutMs = parseDuration(ctx.nodeTimeout);
      if (elapsed(t, ctx.now) < timeoutMs) return { target: { ...t, message: `verifying: ${problems[0]}` }, waitMs: WAIT_POLL_MS };
      return failed(t, 'Verify', `not verified within nodeTimeout ${ctx.nodeTimeout}: ${problems.slice(0, 3).join('; ')}`, ctx.now);
    }
    const parts = [`serial ${t.serial} served by every endpoint`];
    if (called.length) parts.push(`the API server called ${called.join(', ')}`);
    if (notProbed.length) parts.push(`not probed: ${notProbed.join('; ')}`);
    return advance(t, 'Verify', ctx.now, { message: parts.join('; ') });
  },

  async Cleanup(t, ctx) {
    const dropped = actionOf(t) === 'Regenerate' ? await dropOldCa(ctx, t) : [];
    await ctx.cluster.deleteSecret(backupRef(t, ctx.owner));
    if (keepsCaSecret(t)) await ctx.cluster.deleteSecret(caBackupRef(t, ctx.owner));
    const done: SecretRunTarget = { ...t, phase: 'Rotated', message: `${t.message ?? 'verified'}${dropped.length ? `; the old CA dropped from the caBundle of ${dropped.join(', ')}` : ''}; backup deleted` };
    delete done.step;
    delete done.stepSince;
    return { target: done };
  },

  async Restore(t, ctx) {
    const backup = await ctx.cluster.getSecret(backupRef(t, ctx.owner));
    if (!backup) return stuck(t, 'Restore', `its backup ${backupRef(t, ctx.owner).name} is gone`, ctx.owner);
    // First the CA that Trust added, while the Secret still holds what it signed (a regenerated pair's CA may be new).
    if (t.caAddedTo?.length) await dropFromFronts(ctx.cluster, t, t.caAddedTo, await issuerPemOf(ctx, t));
    const caBackup = keepsCaSecret(t) ? await ctx.cluster.getSecret(caBackupRef(t, ctx.owner)) : undefined;
    if (caBackup) await putBack(ctx, restoredFrom(caBackup));
    await putBack(ctx, restoredFrom(backup));
    const fronts = frontsIn(backup);
    for (const [front, object] of Object.entries(fronts)) {
      // One that is still as it was is left alone: its delete may be what failed.
      const live = await ctx.cluster.getFront(front);
      if (!live || JSON.stringify(keptOf(live)) !== JSON.stringify(object)) await ctx.cluster.putFront(front, object);
    }
    const what = [`Secret ${ref(t)}`, ...(caBackup ? [`its CA Secret ${t.ca.namespace}/${t.ca.name}`] : []), ...Object.keys(fronts)].join(', ');
    return { target: { ...t, step: 'Undo', message: `${t.message}; ${what} restored from the backup` } };
  },

  async Undo(t, ctx) {
    const before = t.templateBefore;
    if (!before?.rolled) return { target: { ...t, phase: 'RolledBack', step: t.failedStep, message: `${t.message}; the pods were not rolled, nothing else to undo` } };
    await ctx.cluster.patchTemplateAnnotations(t.secret.namespace, t.workload, Object.fromEntries(Object.entries(ROLL_ANNOTATIONS).map(([field, key]) => [key, before[field as keyof typeof ROLL_ANNOTATIONS] ?? null])));
    return { target: { ...t, step: 'UndoRollout', stepSince: ctx.now.toISOString() } };
  },

  async UndoRollout(t, ctx) {
    return waitForRollout(t, ctx, 'UndoRollout', (done) => ({ target: { ...t, phase: 'RolledBack', step: t.failedStep, message: `${t.message}; pod template put back, ${done}` } }));
  },
};

/** Regenerate, once verified: a new CA of the owner's replaces the old one in the caBundles (Cleanup runs this before the backup, which holds the old certificate, goes). */
async function dropOldCa(ctx: StepContext, t: SecretRunTarget): Promise<string[]> {
  const backup = await ctx.cluster.getSecret(backupRef(t, ctx.owner));
  const live = await ctx.cluster.getSecret(t.secret);
  const oldLeaf = backup ? leafIn(backup) : undefined;
  const newLeaf = live ? leafIn(live) : undefined;
  return oldLeaf && newLeaf ? dropSupersededCa(ctx.cluster, t, oldLeaf, newLeaf) : [];
}

/** Writes a Secret back as its backup holds it: over what is there now (kubectl's last-applied annotation kept), or created. */
async function putBack(ctx: StepContext, original: ReturnType<typeof restoredFrom>): Promise<void> {
  const live = await ctx.cluster.getSecret(original.metadata);
  // The backup leaves out kubectl's last-applied annotation (it repeats the key in clear); the live Secret still has the original's.
  const lastApplied = live?.metadata.annotations?.[LAST_APPLIED];
  if (lastApplied) original.metadata.annotations = { ...original.metadata.annotations, [LAST_APPLIED]: lastApplied };
  if (live) await ctx.cluster.updateSecret({ ...original, metadata: { ...original.metadata, resourceVersion: live.metadata.resourceVersion } });
  else await ctx.cluster.createSecret(original);
}

async function waitForRollout(t: SecretRunTarget, ctx: StepContext, step: 'Rollout' | 'UndoRollout', done: (message: string) => StepResult): Promise<StepResult> {
  const w = await ctx.cluster.getWorkload(t.secret.namespace, t.workload);
  const fail = (why: string): StepResult => (step === 'Rollout' ? failed(t, step, why, ctx.now) : stuck(t, step, why, ctx.owner));
  if (!w) return fail(`${t.workload} in namespace ${t.secret.namespace} not found`);
  const r = rolloutOf(w);
  if (r.state === 'Done') return done(r.message);
  if (r.state === 'Failed') return fail(r.message);
  if (elapsed(t, ctx.now) >= parseDuration(ctx.nodeTimeout)) return fail(`the rollout did not finish within nodeTimeout ${ctx.nodeTimeout}: ${r.message}`);
  // While rolling back, the message keeps the story of the failure; the wait shows only on the way forward.
  return { target: step === 'Rollout' ? { ...t, message: r.message } : t, waitMs: WAIT_POLL_MS };
}

function probesOf(frontName: string, front: LiveFrontObject, services: readonly ServiceRef[], namespaces: readonly NamespaceInfo[]) {
  switch (front.kind) {
    case 'ValidatingWebhookConfiguration':
    case 'MutatingWebhookConfiguration':
      return callsOf(front, services).map((c) => probeForWebhook(front.webhooks![c.webhook!]!, namespaces));
    case 'APIService':
      return [probeForApiService(front)];
    case 'CustomResourceDefinition':
      // A list converts only objects that exist: the served-certificate check is the evidence (probe-request.ts).
      return [{ ok: false as const, reason: `${frontName}: a conversion webhook has no harmless request; the served certificate was checked` }];
  }
}

/**
 * Whether the API server reached the endpoint. A webhook that denies the dry
 * run was called all the same (the TLS handshake passed); "failed calling
 * webhook" and an aggregated API that cannot be reached are the failures.
 */
async function sendProbe(cluster: SecretRunCluster, request: ProbeRequest): Promise<{ called: boolean; how: string }> {
  const what = request.kind === 'Get' ? `GET ${request.path}` : `dry-run create of a ConfigMap in ${request.namespace}`;
  try {
    await cluster.send(request);
    return { called: true, how: `${what} succeeded` };
  } catch (err) {
    const message = describeError(err);
    if (/failed calling webhook|x509|certificate|tls:|connection refused|no endpoints available|service unavailable|the server is currently unable/i.test(message)) return { called: false, how: `${what}: ${message}` };
    if (request.kind === 'DryRunCreateConfigMap' && /admission webhook .* denied the request/i.test(message)) return { called: true, how: `${what} denied by the webhook, so it was called` };
    return { called: false, how: `${what}: ${message}` };
  }
}
