// One node's rotation: back up → stage → install → restart → verify, each step
// recorded in the journal so a killed run resumes where it stopped, and any
// failure after the first live change restores the backup byte for byte.
import { randomUUID, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { posix } from 'node:path';
import { allFiles, fillPath } from '../distributions/index.js';
import type { CertFile, ClusterObject, DistributionCatalog, HealthProbe, NodeRole, ServedPort } from '../distributions/types.js';
import { readCertificateFile, serialOf } from '../pki/certfile.js';
import {
  backupParents,
  chooseBackupLocation,
  copyFileKeepingMeta,
  copyTree,
  PARTIAL_PREFIX,
  publishBackup,
  type BackupLocation,
  removeStalePartials,
} from './backup.js';
import { isFinished, JOURNAL_DIR, JOURNAL_FILE, readJournal, saveJournal, UnreadableJournalError, type Journal, type JournalFile } from './journal.js';
import { planNode, scopeServices, type PlannedFile, type Scope } from './plan.js';
import { prepareFiles, type PreparedFile, type ProvidedMaterial } from './prepare.js';
import { performRestart, restartPlanFor, type RestartExecutor } from './restart.js';
import { HostRoot, writeFileDurable } from './root.js';
import { pausePoint } from './testhooks.js';
import { DEFAULT_LOCAL_STEP_TIMEOUT_MS, withinDeadline } from './deadline.js';
import { eventually, nodeAddresses, probe, ServedCertificateError, servedSerialOn } from './verify.js';
import { embeddedState } from './embedded.js';
import { describeSignedBy, signedByOnHost, type SignedBy } from './issuer.js';
import { effectiveValidity, readServiceEnvironment, type EffectiveValidity } from './validity.js';

export type RotationStep = 'plan' | 'prepare' | 'backup' | 'install' | 'restart' | 'verify' | 'rollback' | 'done';

export interface ProgressEvent {
  readonly step: RotationStep;
  readonly message: string;
}

export interface NodeRotationOptions {
  readonly catalog: DistributionCatalog;
  readonly host: HostRoot;
  readonly scope: Scope;
  readonly roles: readonly NodeRole[];
  readonly dataDir: string;
  // Where the node's endpoints are reached (probes and served-certificate checks):
  // the node's IP (default: this host's own addresses, tried in order) for
  // components bound to it, and the address of the node's 127.0.0.1 (default
  // 127.0.0.1: we run on the node, or in a hostNetwork pod).
  readonly nodeIP?: string | undefined;
  readonly loopbackAddress?: string | undefined;
  readonly restart: boolean;
  readonly executor?: RestartExecutor;
  readonly verifyTimeoutMs?: number;
  // Verification ends by then at the latest (an agent bounded by nodeTimeout
  // must leave its rollback time to restore and restart within it).
  readonly verifyBy?: Date;
  // The bound of each step that only touches the node's files (plan, prepare,
  // backup, install, the rollback's restore): see deadline.ts. Default 60 s.
  readonly localStepTimeoutMs?: number;
  readonly now?: Date;
  readonly onProgress?: (e: ProgressEvent) => void;
  // The caller's identity for this run (an agent passes the NodeRotation's
  // runID). A run with the same id is never done twice: a finished one is only
  // read back, an unfinished one is continued.
  readonly runId?: string;
  // false (onFailure Halt): a failure leaves the node as it is instead of
  // restoring the backup. Default true.
  readonly rollbackOnFailure?: boolean;
  // RKE with a controller-issued bundle: the certificates to install, by cert
  // path (as the plan names it). Each is checked against the on-disk CA and its
  // key instead of being signed here, so a node without the CA key can rotate.
  // Without it (the offline CLI), every file is signed locally as before.
  // A function is called only when a new run is prepared (a resumed or
  // finished run never needs the material again: it is staged in the journal).
  readonly provided?: ProvidedMaterial | (() => Promise<ProvidedMaterial>);
}

export interface FileResult {
  readonly service: string;
  readonly id: string;
  readonly path: string;
  readonly renewal: string;
  readonly oldSerial?: string;
  readonly newSerial?: string;
  readonly notAfter?: string;
  readonly servedVerified: boolean;
  readonly backupPath?: string;
  // 'pending-restart': the distribution makes the new certificate at its next start.
  readonly status: 'renewed' | 'pending-restart';
  // Files made at start (cert-dir pairs): 'self-signed' or 'signed by <CA file>',
  // of the new file once verified, else of the one replaced.
  readonly signedBy?: string;
  // Signed files: the validity used and why, e.g.
  // "730d from CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS in /etc/default/rke2-server".
  readonly validity?: string;
  // A trigger-renewed file that was missing: only its trigger was written (see note).
  readonly wasMissing?: boolean;
  // For people: what was done that the other fields do not say.
  readonly note?: string;
}

export interface NodeRotationResult {
  readonly backupDir?: string;
  readonly resumed: boolean;
  // The run (by runId) had already finished: nothing was done, this is its recorded outcome.
  readonly alreadyFinished?: boolean;
  readonly files: FileResult[];
  // Copies in the cluster that an API-connected caller must renew as well.
  readonly clusterObjects: readonly ClusterObject[];
  // Did not fail the run, but the operator should know (a stale rke2.yaml, an
  // ignored CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS).
  readonly warnings?: readonly string[];
}

export class NodeRotationError extends Error {
  constructor(
    readonly step: RotationStep,
    // What went wrong, without the step and rollback wording the message adds.
    readonly detail: string,
    readonly rolledBack: boolean,
    readonly backupDir?: string,
  ) {
    super(`${step}: ${detail}${rolledBack ? ` (rolled back from ${backupDir})` : ''}`);
    this.name = 'NodeRotationError';
  }
}

// A HostRoot limited to the directories this catalog may write.
export function openHost(catalog: DistributionCatalog, root: string, dataDir: string): HostRoot {
  return new HostRoot(root, catalog.writableDirs.map((d) => fillPath(d, { dataDir })));
}

const scopeKey = (catalog: DistributionCatalog, scope: Scope): string => ('all' in scope ? 'all' : scopeServices(catalog, scope).sort().join(','));

async function findJournal(
  o: Pick<NodeRotationOptions, 'catalog' | 'host' | 'dataDir'>,
  matches: (j: Journal) => boolean,
): Promise<Journal | undefined> {
  return (await listJournals(o)).find(matches);
}

/** Every backup's journal on the node. */
async function listJournals(o: Pick<NodeRotationOptions, 'catalog' | 'host' | 'dataDir'>): Promise<Journal[]> {
  const out: Journal[] = [];
  const vars = { dataDir: o.dataDir };
  const prefix = o.catalog.backup.prefix;
  for (const parent of await backupParents(o.catalog.backup, o.host, vars)) {
    for (const name of await o.host.list(parent)) {
      if (!name.startsWith(prefix)) continue;
      const dir = posix.join(parent, name);
      let j;
      try {
        j = await readJournal(o.host, dir);
      } catch (e) {
        if (!(e instanceof UnreadableJournalError)) throw e;
        // Never retried in silence: said once, with where the journal and the backup are.
        throw new NodeRotationError(
          'plan',
          `${e.path}: the journal of an earlier rotation cannot be read (${e.reason}); moved aside to ${e.movedTo}. The backup ${dir} holds the files as they were before that rotation: compare the node's files with it (restore them from it if that rotation was cut off mid-install), then run again`,
          false,
          dir,
        );
      }
      if (j) out.push(j);
    }
  }
  return out;
}

export function findUnfinishedJournal(o: Pick<NodeRotationOptions, 'catalog' | 'host' | 'dataDir'>): Promise<Journal | undefined> {
  return findJournal(o, (j) => !isFinished(j));
}

/** The outcome of a run that already finished, read back from its journal. */
function finishedOutcome(j: Journal): Omit<NodeRotationResult, 'resumed' | 'clusterObjects'> {
  if (j.step === 'done') return { backupDir: j.backupDir, files: results(j), ...(j.warnings?.length ? { warnings: j.warnings } : {}) };
  const step = (j.failure?.step ?? 'rollback') as RotationStep;
  throw new NodeRotationError(step, j.failure?.message ?? 'the run failed', j.step === 'rolled-back', j.backupDir);
}

export async function runNodeRotation(o: NodeRotationOptions): Promise<NodeRotationResult> {
  const progress = (step: RotationStep, message: string) => o.onProgress?.({ step, message });
  const vars = { dataDir: o.dataDir };
  const key = scopeKey(o.catalog, o.scope);
  // Only services that have files on this node (rke2-serving is a server matter, not an agent's).
  const clusterObjects = [
    ...o.catalog.clusterObjects,
    ...scopeServices(o.catalog, o.scope)
      .filter((s) => o.catalog.services[s]?.files.some((f) => f.roles.some((r) => o.roles.includes(r))))
      .flatMap((s) => o.catalog.services[s]?.clusterObjects ?? []),
  ];

  for (const parent of await backupParents(o.catalog.backup, o.host, vars)) await removeStalePartials(o.host, parent);
  if (o.runId) {
    const same = await findJournal(o, (j) => j.runId === o.runId);
    if (same && isFinished(same)) {
      progress('plan', `run ${o.runId} already finished (${same.step}); reporting its outcome from ${same.backupDir}`);
      return { ...finishedOutcome(same), resumed: true, alreadyFinished: true, clusterObjects };
    }
    if (same) {
      progress('plan', `resuming run ${o.runId} recorded in ${same.backupDir} at step ${same.step}`);
      return { ...(await continueRun(o, same)), resumed: true, clusterObjects };
    }
  }
  const unfinished = await findUnfinishedJournal(o);
  if (unfinished) {
    if (unfinished.scope !== key || unfinished.restart !== o.restart) {
      throw new NodeRotationError(
        'plan',
        `an unfinished rotation (scope ${unfinished.scope}${unfinished.restart ? '' : ', no restart'}) is recorded in ${unfinished.backupDir}; run it again with the same scope to finish it`,
        false,
      );
    }
    progress('plan', `resuming the rotation recorded in ${unfinished.backupDir} at step ${unfinished.step}`);
    return { ...(await continueRun(o, unfinished)), resumed: true, clusterObjects };
  }

  // The last run here halted (onFailure Halt) and left the node as it failed; this
  // run backs up the files as they are now, so its backup is not the one to go back to.
  const halted = (await listJournals(o)).sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt))[0];
  if (halted?.step === 'halted') {
    progress('plan', `note: run ${halted.runId} halted here at step ${halted.failure?.step ?? '?'} (${halted.failure?.message ?? 'no message'}); the files from before it are in ${halted.backupDir}, this run backs up the files as they are now`);
  }
  progress('plan', `planning ${key} for roles ${o.roles.join(',')}`);
  const plan = await wrap(o, 'plan', () => planNode(o.catalog, o.host, o.scope, o.roles, { dataDir: o.dataDir, withRestartSideEffects: o.restart }));
  if (plan.length === 0) return { resumed: false, files: [], clusterObjects };
  for (const p of plan.filter((p) => p.missing)) {
    progress('plan', `${p.cert}: missing; writing the regenerate trigger ${p.trigger}, ${o.catalog.distribution} issues a new one at start`);
  }

  // The validity of what we sign, from the distribution's own service environment.
  const env = await wrap(o, 'plan', () => readServiceEnvironment(o.catalog, o.host, o.roles));
  const validities = new Map<PlannedFile['spec']['validity'], EffectiveValidity>();
  const validityOf = (p: PlannedFile): EffectiveValidity => {
    if (!validities.has(p.spec.validity)) validities.set(p.spec.validity, effectiveValidity(p.spec.validity, env));
    return validities.get(p.spec.validity)!;
  };
  const signing = o.provided ? [] : plan.filter((p) => p.spec.renewal.kind === 'sign');
  const planWarnings = [...new Set(await wrap(o, 'plan', async () => signing.map((p) => validityOf(p).warning).filter((w): w is string => !!w)))];
  for (const d of new Set(signing.map((p) => validityOf(p).description))) progress('plan', `signed leaves get validity ${d}`);
  for (const w of planWarnings) progress('plan', `warning: ${w}`);

  progress('prepare', o.provided ? `checking ${plan.length} files and the controller-issued replacements` : `checking ${plan.length} files and signing replacements`);
  const now = o.now ?? new Date();
  // Fetched outside wrap(): the caller's own errors (still waiting for the material) are its to handle.
  const provided = typeof o.provided === 'function' ? await o.provided() : o.provided;
  const prepared = await wrap(o, 'prepare', async () => prepareFiles(o.host, plan, now, provided, provided ? undefined : validityOf));

  progress('backup', 'backing up');
  const journal = await wrap(o, 'backup', async (signal) => {
    const loc = await chooseBackupLocation(o.catalog.backup, o.host, vars, now);
    const partialAbs = await o.host.assertWritable(posix.join(loc.parent, `${PARTIAL_PREFIX}${loc.name}`));
    try {
      return await backUp(o, loc, partialAbs, prepared, { key, now, planWarnings }, signal);
    } catch (e) {
      // Nothing of a failed backup is left behind. Past the deadline the disk may
      // not answer the removal either: it is not waited for (the next run removes
      // what is left, removeStalePartials).
      const removal = fs.rm(partialAbs, { recursive: true, force: true }).catch(() => undefined);
      if (!signal.aborted) await removal;
      throw e;
    }
  });
  progress('backup', `backed up to ${journal.backupDir}`);
  await pausePoint('after-backup');
  return { ...(await continueRun(o, journal)), resumed: false, clusterObjects };
}

/**
 * Copies what the plan replaces and stages the new files in a partial backup
 * directory, writes the journal there, and publishes it under its final name:
 * only a complete backup is ever seen, and with it the run it records.
 */
async function backUp(
  o: NodeRotationOptions,
  loc: BackupLocation,
  partialAbs: string,
  prepared: readonly PreparedFile[],
  run: { key: string; now: Date; planWarnings: readonly string[] },
  signal: AbortSignal,
): Promise<Journal> {
  const { key, now, planWarnings } = run;
  if (loc.copyDir) await copyTree(await o.host.resolve(loc.copyDir), partialAbs);
  else await fs.mkdir(partialAbs, { mode: 0o700 });
  await fs.mkdir(posix.join(partialAbs, JOURNAL_DIR, 'staged'), { recursive: true, mode: 0o700 });
  const finalDir = posix.join(loc.parent, loc.name);
  const taken = new Set(await fs.readdir(partialAbs));
  const backupOf = async (path: string | undefined): Promise<string | undefined> => {
    if (!path || !(await o.host.exists(path))) return undefined;
    if (loc.copyDir && path.startsWith(`${loc.copyDir}/`)) return posix.join(finalDir, path.slice(loc.copyDir.length + 1));
    // rke2 flattens files from outside server/tls into the backup by base name;
    // agent/client-kubelet.key would overwrite server/tls/client-kubelet.key there,
    // so a clash gets the parent dir's name as a prefix instead of losing a file.
    let name = posix.basename(path);
    if (taken.has(name)) name = `${posix.basename(posix.dirname(path))}-${name}`;
    taken.add(name);
    await copyFileKeepingMeta(await o.host.resolve(path), posix.join(partialAbs, name));
    return posix.join(finalDir, name);
  };
  const files: JournalFile[] = [];
  for (const p of prepared) {
    const pl = p.planned;
    const stage = async (suffix: string, data: string | undefined) => {
      if (data === undefined) return undefined;
      const name = `${pl.id}.${suffix}`;
      await writeFileDurable(posix.join(partialAbs, JOURNAL_DIR, 'staged', name), data, 0o600);
      return posix.join(finalDir, JOURNAL_DIR, 'staged', name);
    };
    const [backupCert, backupKey, stagedCert, stagedKey] = [
      await backupOf(pl.cert),
      await backupOf(pl.key),
      await stage('crt', p.certPem),
      await stage('key', p.keyPem),
    ];
    files.push({
      service: pl.service,
      id: pl.id,
      specId: pl.spec.id,
      renewal: pl.spec.renewal.kind,
      ...(pl.cert ? { cert: pl.cert } : {}),
      ...(pl.key ? { key: pl.key } : {}),
      ...(p.certMeta ? { certMeta: p.certMeta } : {}),
      ...(p.keyMeta ? { keyMeta: p.keyMeta } : {}),
      ...(backupCert ? { backupCert } : {}),
      ...(backupKey ? { backupKey } : {}),
      ...(stagedCert ? { stagedCert } : {}),
      ...(stagedKey ? { stagedKey } : {}),
      ...(pl.trigger ? { trigger: pl.trigger } : {}),
      ...(pl.caCert ? { caCert: pl.caCert } : {}),
      ...(p.oldSerial ? { oldSerial: p.oldSerial } : {}),
      ...(p.newSerial ? { newSerial: p.newSerial } : {}),
      ...(p.notAfter ? { notAfter: p.notAfter.toISOString() } : {}),
      ...(pl.spec.servedOn ? { servedOn: pl.spec.servedOn, servedCa: servedCaOf(pl, p.signedBy) } : {}),
      ...(pl.distributionCa ? { distributionCa: pl.distributionCa } : {}),
      ...(p.signedBy ? { signedBy: p.signedBy } : {}),
      ...(p.validity ? { validity: p.validity } : {}),
      ...(pl.missing ? { missing: true } : {}),
    });
  }
  const j: Journal = {
    version: 1,
    runId: o.runId ?? randomUUID(),
    distribution: o.catalog.distribution,
    scope: key,
    roles: [...o.roles],
    restart: o.restart,
    backupDir: finalDir,
    startedAt: now.toISOString(),
    step: 'staged',
    markers: [],
    files,
    ...(planWarnings.length ? { warnings: [...planWarnings] } : {}),
  };
  await writeFileDurable(posix.join(partialAbs, JOURNAL_DIR, 'journal.json'), `${JSON.stringify(j, null, 2)}\n`, 0o600);
  await pausePoint('mid-backup');
  // Past the deadline the node is reported failed with nothing changed: a
  // backup that finishes late must not appear as an unfinished run to resume.
  signal.throwIfAborted();
  await publishBackup(o.host, loc, partialAbs);
  return j;
}

/** A local step (see deadline.ts), its errors named by the step. */
async function wrap<T>(o: Pick<NodeRotationOptions, 'localStepTimeoutMs'>, step: RotationStep, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  try {
    return await local(o, fn);
  } catch (e) {
    if (e instanceof NodeRotationError) throw e;
    throw new NodeRotationError(step, (e as Error).message, false);
  }
}

const stepTimeoutMs = (o: Pick<NodeRotationOptions, 'localStepTimeoutMs'>): number => o.localStepTimeoutMs ?? DEFAULT_LOCAL_STEP_TIMEOUT_MS;

function local<T>(o: Pick<NodeRotationOptions, 'localStepTimeoutMs'>, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return withinDeadline(stepTimeoutMs(o), fn);
}

/** The end of the run's verification: one budget for all checks together, not one each. */
const verifyEnd = (o: Pick<NodeRotationOptions, 'verifyTimeoutMs' | 'verifyBy'>): number => Math.min(Date.now() + (o.verifyTimeoutMs ?? 120_000), o.verifyBy?.getTime() ?? Infinity);

/** The journal's last step (done, rolled-back): the staged keys go, then the step is recorded. */
function closeJournal(o: NodeRotationOptions, j: Journal, step: 'done' | 'rolled-back'): Promise<void> {
  return local(o, async (signal) => {
    await fs.rm(await o.host.resolve(posix.join(j.backupDir, JOURNAL_DIR, 'staged')), { recursive: true, force: true });
    j.step = step;
    await saveJournal(o.host, j, signal);
  });
}

async function continueRun(o: NodeRotationOptions, j: Journal): Promise<Omit<NodeRotationResult, 'resumed' | 'clusterObjects'>> {
  const progress = (step: RotationStep, message: string) => o.onProgress?.({ step, message });
  let current: RotationStep = 'install';
  await local(o, () => o.host.removeStaleTempFiles(posix.join(j.backupDir, JOURNAL_DIR)));
  try {
    if (j.step === 'rolling-back') throw new ResumedRollback();
    if (j.step === 'staged' || j.step === 'installing') {
      await local(o, async (signal) => {
        j.step = 'installing';
        await saveJournal(o.host, j, signal);
        progress('install', `installing ${j.files.length} files`);
        await install(o.host, j, signal);
        j.step = 'installed';
        await saveJournal(o.host, j, signal);
      });
      await pausePoint('after-install');
    }
    const restartPlan = restartPlanFor(o.catalog, j.roles);
    let components: readonly string[] | undefined;
    if (j.restart && (j.step === 'installed' || j.step === 'restarting')) {
      current = 'restart';
      j.step = 'restarting';
      j.restartAttempted = true;
      await saveJournal(o.host, j);
      progress('restart', `restarting (${restartPlan.kind})`);
      components = (await restartNode(o, j)).components;
      j.step = 'restarted';
      await saveJournal(o.host, j);
      await pausePoint('after-restart');
    }
    current = 'verify';
    progress('verify', j.restart ? 'checking files, served certificates and health probes' : 'checking files');
    // Each check retries within the verification budget; this bounds a check
    // that never returns at all (a read of a hung disk).
    const end = verifyEnd(o);
    await withinDeadline(Math.max(0, end - Date.now()) + stepTimeoutMs(o), () => verifyNode(o, j, components, end));
    await closeJournal(o, j, 'done');
    progress('done', `rotated ${j.files.length} files; backup in ${j.backupDir}`);
    return { backupDir: j.backupDir, files: results(j), ...(j.warnings?.length ? { warnings: j.warnings } : {}) };
  } catch (e) {
    const failedStep: RotationStep = e instanceof ResumedRollback ? (j.failure?.step as RotationStep) ?? 'rollback' : current;
    const message = e instanceof ResumedRollback ? j.failure?.message ?? 'interrupted rollback' : (e as Error).message;
    j.failure ??= { step: failedStep, message };
    if (o.rollbackOnFailure === false && !(e instanceof ResumedRollback)) {
      j.step = 'halted';
      await saveJournal(o.host, j);
      progress(failedStep, `${failedStep} failed (${message}); halted without rolling back — the backup is in ${j.backupDir}`);
      throw new NodeRotationError(failedStep, message, false, j.backupDir);
    }
    progress('rollback', `${failedStep} failed (${message}); restoring ${j.backupDir}`);
    try {
      await rollback(o, j);
    } catch (re) {
      throw new NodeRotationError(failedStep, `${message}; ROLLBACK FAILED: ${(re as Error).message} — ${byHand(j)}`, false, j.backupDir);
    }
    throw new NodeRotationError(failedStep, message, true, j.backupDir);
  }
}

class ResumedRollback extends Error {}

/**
 * What a person does when the rollback itself failed: the journal still says
 * rolling-back, so the same run started again finishes it; or each file by
 * hand, exactly (host paths).
 */
function byHand(j: Journal): string {
  const steps = j.files.flatMap((f) => [
    ...(f.backupKey ? [`cp -p /${f.backupKey} /${f.key}`] : []),
    ...(f.backupCert ? [`cp -p /${f.backupCert} /${f.cert}`] : []),
    ...(f.trigger ? [`rm -f /${f.trigger}`] : []),
    ...(f.missing && f.cert ? [`rm -f /${f.cert}`] : []),
  ]);
  return (
    `start the same rotation again to finish the rollback from its journal (${j.backupDir}/${JOURNAL_DIR}/${JOURNAL_FILE}), ` +
    `or restore by hand: ${steps.join('; ')}${j.restartAttempted ? '; then restart the services' : ''}`
  );
}

async function install(host: HostRoot, j: Journal, signal: AbortSignal): Promise<void> {
  const dirs = new Set(j.files.flatMap((f) => [f.cert, f.key].filter((p): p is string => !!p).map((p) => posix.dirname(p))));
  for (const d of dirs) await host.removeStaleTempFiles(d);
  let n = 0;
  for (const f of j.files) {
    signal.throwIfAborted();
    switch (f.renewal) {
      case 'sign':
      case 'new-key':
        // Key first: a cert is only useful with its key, and a crash in between is
        // healed by the resume reinstalling both from the staged copies.
        // Each file keeps its owner and mode, as a rollback puts them back; a key
        // never gets more than 0600 (a group- or world-readable key is narrowed).
        if (f.stagedKey) await host.writeFileAtomic(f.key!, await host.readFile(f.stagedKey), keyMode(f.keyMeta?.mode), f.keyMeta, signal);
        if (f.stagedCert) await host.writeFileAtomic(f.cert!, await host.readFile(f.stagedCert), f.certMeta?.mode ?? 0o644, f.certMeta, signal);
        break;
      case 'trigger':
        await host.writeFileAtomic(f.trigger!, '', 0o600, undefined, signal);
        break;
      case 'remove-to-regenerate':
        if (f.cert) await host.remove(f.cert);
        if (f.key) await host.remove(f.key);
        break;
      case 'reissued-on-start':
        break;
    }
    if (++n === 1) await pausePoint('mid-install');
  }
}

async function restartNode(o: NodeRotationOptions, j: Journal) {
  if (!o.executor) throw new Error('no restart executor configured');
  const consumers = j.files.flatMap((f) => specOf(o.catalog, f).consumers);
  return performRestart(restartPlanFor(o.catalog, j.roles), o.executor, o.host, { dataDir: o.dataDir }, consumers, async (markers) => {
    j.markers = [...new Set([...j.markers, ...markers])];
    await saveJournal(o.host, j);
  });
}

function specOf(catalog: DistributionCatalog, f: JournalFile): CertFile {
  const spec = allFiles(catalog).find((s) => s.id === f.specId);
  if (!spec) throw new Error(`journal names catalog entry ${f.specId}, which this version does not know`);
  return spec;
}

async function currentSerial(o: NodeRotationOptions, f: JournalFile): Promise<{ serial: string; notAfter: string; cert: X509Certificate }> {
  const file = readCertificateFile((await o.host.readFile(f.cert!)).toString('utf8'), f.cert!, specOf(o.catalog, f).format);
  return { serial: serialOf(file.leaf), notAfter: new Date(file.leaf.validTo).toISOString(), cert: file.leaf };
}

async function verifyNode(o: NodeRotationOptions, j: Journal, components: readonly string[] | undefined, end: number): Promise<void> {
  const timeout = () => Math.max(0, end - Date.now());
  for (const f of j.files) {
    if (f.renewal === 'sign') {
      const { serial } = await currentSerial(o, f);
      if (serial !== f.newSerial) throw new Error(`${f.cert}: holds serial ${serial}, expected the new ${f.newSerial ?? '?'}`);
    } else if (f.renewal === 'new-key') {
      if ((await o.host.readFile(f.key!)).equals(await o.host.readFile(f.backupKey!))) throw new Error(`${f.key}: still the old key`);
    } else if (j.restart) {
      // Files the distribution makes at start: they must be back, new, and from the right CA.
      const check = async () => {
        if (!(await o.host.exists(f.cert!))) throw new Error(`${f.cert}: not regenerated after the restart`);
        if (f.trigger && (await o.host.exists(f.trigger))) throw new Error(`${f.trigger}: still present, the regeneration did not run`);
        const cur = await currentSerial(o, f);
        // A copy of a server file (kube-proxy, rke2-controller) only changes once the server's did.
        const renewal = specOf(o.catalog, f).renewal;
        const isCopy = renewal.kind === 'reissued-on-start' && !!renewal.copyOf;
        if (!isCopy && cur.serial === f.oldSerial) throw new Error(`${f.cert}: still serial ${cur.serial} after the restart`);
        if (f.caCert && !cur.cert.verify(new X509Certificate(await o.host.readFile(f.caCert)).publicKey)) {
          throw new Error(`${f.cert}: regenerated certificate is not signed by ${f.caCert}`);
        }
        // A cert-dir pair is judged by what was made: signed by server-ca (k3s PR
        // #12285) is verified against it; self-signed as the component makes it.
        const signedBy = f.renewal === 'remove-to-regenerate' ? await signedByOnHost(o.host, f.cert!, specOf(o.catalog, f).format, f.distributionCa) : undefined;
        // The release does not change during a rotation: a pair that server-ca signed
        // before must be signed by it again (a chain of some other CA looks "self-signed").
        if (f.signedBy && f.signedBy !== 'self-signed' && signedBy === 'self-signed') {
          throw new Error(`${f.cert}: was signed by ${f.signedBy.caFile} before the restart; the regenerated certificate is not`);
        }
        return { ...cur, signedBy };
      };
      const cur = await eventually(check, timeout());
      f.newSerial = cur.serial;
      f.notAfter = cur.notAfter;
      if (cur.signedBy) {
        f.signedBy = cur.signedBy;
        if (f.servedOn) f.servedCa = cur.signedBy === 'self-signed' ? f.cert : cur.signedBy.caFile;
      }
    }
  }
  await saveJournal(o.host, j);
  if (!j.restart) {
    // Copies the service rewrites only when it starts keep the old certificate until then.
    for (const { f, copy, path } of embeddedCopies(o, j)) {
      if (!(await o.host.exists(path))) continue;
      addWarning(j, `/${path} still embeds the old ${f.id} certificate until ${copy.rewrittenOnStartOf} restarts (it rewrites the file at every start)`);
      o.onProgress?.({ step: 'verify', message: `warning: ${j.warnings!.at(-1)!}` });
    }
    await saveJournal(o.host, j);
    return;
  }

  // Each serving port must present a certificate that is now on disk and new,
  // checked where the component listens (its loopback or the node IP).
  const addrs = nodeAddresses({ loopback: o.loopbackAddress, nodeIP: o.nodeIP });
  const ports = new Map<number, { served: ServedPort; files: JournalFile[] }>();
  for (const f of j.files) {
    for (const served of (f.servedOn ?? []).map(servedPortOf)) {
      const entry = ports.get(served.port) ?? { served, files: [] };
      entry.files.push(f);
      ports.set(served.port, entry);
    }
  }
  for (const { served, files } of ports.values()) {
    const expected = new Set(files.map((f) => f.newSerial).filter((s): s is string => !!s));
    // Every file served on one port is signed by the same CA (RKE's per-host etcd pairs: kube-ca).
    const caFile = files.find((f) => f.servedCa)?.servedCa;
    const trust = caFile ? { caFile, ca: await o.host.readFile(caFile) } : undefined;
    // Waiting helps while the old certificate is still served (the component is
    // coming back). Once the NEW one is served and clients would refuse it, the
    // component has loaded it: nothing changes by waiting, so fail (and roll back) now.
    const newOneRefused = (e: unknown) => e instanceof ServedCertificateError && expected.has(e.serial);
    const seen = await eventually(async () => {
      const { address, serial } = await servedSerialOn(addrs, served, trust);
      if (!expected.has(serial)) throw new Error(`${address}:${served.port} serves serial ${serial}, expected ${[...expected].join(' or ')} (${files.map((f) => f.cert).join(', ')})`);
      return serial;
    }, timeout(), 250, newOneRefused);
    for (const f of files) if (f.newSerial === seen) f.servedVerified = true;
  }
  const vars = { dataDir: o.dataDir };
  const probes = o.catalog.probes.filter((p) => p.roles.some((r) => j.roles.includes(r)) && (!components || components.includes(p.component)));
  for (const p of probes) await eventually(() => probe(fillProbe(p, vars), addrs, o.host), timeout());
  await verifyEmbeddedCopies(o, j, timeout);
  await saveJournal(o.host, j);
}

function embeddedCopies(o: NodeRotationOptions, j: Journal) {
  return j.files.flatMap((f) => (specOf(o.catalog, f).embeddedIn ?? []).map((copy) => ({ f, copy, path: fillPath(copy.path, { dataDir: o.dataDir }) })));
}

function addWarning(j: Journal, w: string) {
  j.warnings = [...new Set([...(j.warnings ?? []), w])];
}

// A stale embedded copy is a warning, not a failure: the old client-admin
// certificate stays valid until it expires (its CA is unchanged), so rke2.yaml
// with the old pair still works and the cluster is healthy; rolling back every
// renewed certificate over it would undo a good rotation. The file may also not
// be rke2's (--write-kubeconfig elsewhere leaves an old copy at the default path).
// The service writes it at the end of its start, so it gets up to a short share of
// the remaining verification time to appear.
async function verifyEmbeddedCopies(o: NodeRotationOptions, j: Journal, timeout: () => number): Promise<void> {
  for (const { f, copy, path } of embeddedCopies(o, j)) {
    if (!f.newSerial) continue;
    let last = await embeddedState(o.host, copy, { dataDir: o.dataDir }, f.newSerial);
    if (last.state === 'stale') {
      last = await eventually(async () => {
        const s = await embeddedState(o.host, copy, { dataDir: o.dataDir }, f.newSerial!);
        if (s.state === 'stale') throw Object.assign(new Error('stale'), { state: s });
        return s;
      }, Math.min(timeout(), 5_000)).catch((e: { state?: typeof last }) => e.state ?? last);
    }
    if (last.state === 'stale') {
      addWarning(
        j,
        `/${path} does not embed the new ${f.id} certificate (serial ${f.newSerial}; it holds ${last.serials.join(', ') || 'none'}) after ${copy.rewrittenOnStartOf} restarted; the old one works until it expires — check whether ${copy.rewrittenOnStartOf} writes its kubeconfig elsewhere (write-kubeconfig)`,
      );
      o.onProgress?.({ step: 'verify', message: `warning: ${j.warnings!.at(-1)!}` });
    }
  }
}

// The CA a served certificate must chain to: its signer; for a cert-dir pair the CA
// that signed the file on disk (server-ca since k3s PR #12285), or for a
// self-signed one the file itself (it holds the throwaway CA after the leaf).
function servedCaOf(pl: { cert?: string; ca?: { cert: string }; caCert?: string; spec: CertFile }, signedBy?: SignedBy): string | undefined {
  if (pl.spec.renewal.kind === 'remove-to-regenerate') return signedBy && signedBy !== 'self-signed' ? signedBy.caFile : pl.cert;
  return pl.ca?.cert ?? pl.caCert;
}

// Journals written before listen addresses were recorded hold bare port numbers
// (then every check went to the node IP).
const servedPortOf = (p: ServedPort | number): ServedPort => (typeof p === 'number' ? { port: p, on: 'node-ip' } : p);

function fillProbe(p: HealthProbe, vars: Record<string, string>): HealthProbe {
  return {
    ...p,
    ...(p.ca ? { ca: fillPath(p.ca, vars) } : {}),
    ...(p.caWhenSignedBy ? { caWhenSignedBy: fillPath(p.caWhenSignedBy, vars) } : {}),
    ...(p.clientCert ? { clientCert: { cert: fillPath(p.clientCert.cert, vars), key: fillPath(p.clientCert.key, vars) } } : {}),
  };
}

// The restore and the final bookkeeping are local steps with their deadline; the
// restart between them is bounded by its commands' own timeouts.
async function rollback(o: NodeRotationOptions, j: Journal): Promise<void> {
  await local(o, async (signal) => {
    j.step = 'rolling-back';
    await saveJournal(o.host, j, signal);
    for (const f of j.files) {
      if (f.backupKey) await o.host.writeFileAtomic(f.key!, await o.host.readFile(f.backupKey), f.keyMeta?.mode ?? 0o600, f.keyMeta, signal);
      if (f.backupCert) await o.host.writeFileAtomic(f.cert!, await o.host.readFile(f.backupCert), f.certMeta?.mode ?? 0o644, f.certMeta, signal);
      signal.throwIfAborted();
      if (f.trigger) await o.host.remove(f.trigger);
      // Back to how it was: no file (the distribution may have made one at the restart).
      if (f.missing && f.cert) await o.host.remove(f.cert);
    }
  });
  await pausePoint('mid-rollback');
  if (j.restartAttempted) {
    await restartNode(o, j);
  }
  await local(o, async () => {
    for (const m of j.markers) await o.host.remove(m);
  });
  await closeJournal(o, j, 'rolled-back');
}

function results(j: Journal): FileResult[] {
  return j.files.map((f) => ({
    service: f.service,
    id: f.id,
    path: f.cert ?? f.key!,
    renewal: f.renewal,
    ...(f.oldSerial ? { oldSerial: f.oldSerial } : {}),
    ...(f.newSerial ? { newSerial: f.newSerial } : {}),
    ...(f.notAfter ? { notAfter: f.notAfter } : {}),
    servedVerified: f.servedVerified ?? false,
    ...(f.backupCert || f.backupKey ? { backupPath: (f.backupCert ?? f.backupKey)! } : {}),
    status: f.renewal === 'sign' || f.renewal === 'new-key' || j.restart ? 'renewed' : 'pending-restart',
    ...(f.signedBy ? { signedBy: describeSignedBy(f.signedBy) } : {}),
    ...(f.validity ? { validity: f.validity } : {}),
    ...(f.missing
      ? { wasMissing: true, note: `was missing: wrote the regenerate trigger ${f.trigger}; ${j.distribution} issues a new one at start` }
      : {}),
  }));
}

/** The mode a renewed key is written with: the old key's, without group or other bits (0600 when there was none). */
export function keyMode(old: number | undefined): number {
  const owner = (old ?? 0o600) & 0o600;
  return owner === 0 ? 0o600 : owner;
}
