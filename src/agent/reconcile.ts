// The agent's sync function for one NodeRotation, as a checklist with early
// returns. Level-based: it reads the object from the informer cache, compares
// the report with the instruction, and does whatever is still missing. Running
// it twice for the same object is harmless: a finished run is recognised by its
// runID in status, and the host steps resume from their journal.
import type { Logger } from 'pino';
import type { CertificateRotation } from '../api/certificaterotation.js';
import { API_VERSION, CERTIFICATE_ROTATION, FINISHED_NODE_PHASES, type NodeStep } from '../api/constants.js';
import { runID } from '../api/names.js';
import type { NodeRotation, NodeRotationStatus } from '../api/noderotation.js';
import { NodeRotationError } from '../host/rotation.js';
import type { ReconcileResult } from '../kube/workqueue.js';
import { openForNode } from '../controller/rke-bundle.js';
import { parseDuration } from '../api/duration.js';
import type { SealingKeyPair } from '../pki/seal.js';
import type { BundlePairs, HostRunner } from './host-runner.js';
import type { SealingKeys } from './sealing-keys.js';
import { checkMessage, checkReports, failureMessage, fileReports, hostPath, isReported, statusStep } from './report.js';

export interface AgentDeps {
  nodeName: string;
  /** Who writes the report (the pod name), shown in status.agent. */
  agentName: string;
  /** The NodeRotation as the informer last saw it. */
  get(name: string): NodeRotation | undefined;
  /** The NodeRotation as the API server has it now (undefined when gone). */
  getFresh(name: string): Promise<NodeRotation | undefined>;
  /** The CertificateRotation as the API server has it now (undefined when gone). */
  getRotation(name: string): Promise<CertificateRotation | undefined>;
  /** Merge-patches status; only this node's agent writes a NodeRotation's status. */
  patchStatus(name: string, status: Partial<NodeRotationStatus>): Promise<void>;
  /** This process's sealing key per run (RKE bundles): made in memory, never written. */
  sealingKeys: SealingKeys;
  runner: HostRunner;
  now(): Date;
  log: Logger;
}

export async function reconcileNodeRotation(deps: AgentDeps, name: string): Promise<ReconcileResult | void> {
  // 1. Deleted: the controller withdrew the instruction (the rotation was deleted).
  //    It only does so once this node is not in flight, so nothing is abandoned here.
  const nr = deps.get(name);
  if (!nr) return;

  // 2. Addressed to another node: the label selector already filters, but a
  //    label is shortened for long node names, so the spec is what decides.
  const { spec } = nr;
  if (spec.nodeName !== deps.nodeName) return;

  // 3. Already reported: this run is finished on this node; never do it twice.
  //    The cache can lag our own last write (a watch event of the Updating
  //    report arriving after the final one), so before acting, ask the API server.
  if (isReported(spec, nr.status, FINISHED_NODE_PHASES)) return void deps.sealingKeys.forget(spec.runID);
  const fresh = await deps.getFresh(name);
  if (!fresh || isReported(fresh.spec, fresh.status, FINISHED_NODE_PHASES)) return void deps.sealingKeys.forget(spec.runID);

  // 4. Only the controller's instruction for a run that is going on now is
  //    obeyed: the owner is the CertificateRotation named in spec, with the UID
  //    the runID was made from, and (to rotate) its current run is this one.
  //    Admission lets only the controller create NodeRotations (chart:
  //    noderotation-policy.yaml); this is the agent's own check behind it.
  const refusal = ownerRefusal(fresh, await deps.getRotation(spec.rotation));
  if (refusal) {
    deps.log.warn({ rotation: spec.rotation, runID: spec.runID }, `refused: ${refusal}`);
    await deps.patchStatus(name, {
      phase: 'Failed',
      runID: spec.runID,
      agent: deps.agentName,
      message: `node ${spec.nodeName}: refused, nothing done: ${refusal}`.slice(0, 4000),
      finishedAt: deps.now().toISOString(),
    });
    return;
  }

  // 4b. A Check (mode: Plan) only reads: no Updating report, no journal, no backup.
  if (spec.action === 'Check') return check(deps, name, fresh);

  // 5. Say that the node is being worked on before the host is touched, so a
  //    crash from here on is visible as Updating rather than as a silent Pending.
  const sameRun = fresh.status?.runID === spec.runID;
  const startedAt = sameRun && fresh.status?.startedAt ? fresh.status.startedAt : deps.now().toISOString();
  let step: NodeStep = sameRun && fresh.status?.step ? fresh.status.step : 'BackingUp';
  //    An RKE run's certificates come from the controller, sealed to a key
  //    only this process holds: publish it in the same write.
  const sealingKey = spec.bundleSecretRef ? deps.sealingKeys.forRun(spec.runID) : undefined;
  await deps.patchStatus(name, {
    phase: 'Updating',
    runID: spec.runID,
    agent: deps.agentName,
    startedAt,
    step,
    message: sameRun ? `resuming on ${spec.nodeName}` : `rotating ${spec.scope === 'All' ? 'all services' : spec.services.join(', ')} on ${spec.nodeName}`,
    ...(sealingKey ? { sealingKey: sealingKey.publicKey } : {}),
  });

  // 6. Run (or resume, or read back) the host steps, reporting each step change.
  //    Step reports are best effort: the final report below is what counts.
  const progress: Promise<void>[] = [];
  let result;
  try {
    // The wait for the sealed certificates has the verification budget's bound (70% of spec.timeout from pick-up): past it the controller has given up on this node.
    const sealBy = Date.parse(startedAt) + Math.max(5_000, Math.floor(parseDuration(spec.timeout) * 0.7));
    const bundle = sealingKey ? () => openBundle(deps, name, sealingKey, sealBy) : undefined;
    result = await deps.runner.run(spec, (e) => {
      deps.log.info({ step: e.step }, e.message);
      const next = statusStep(e.step);
      if (next === step || next === 'Done') return;
      step = next;
      progress.push(deps.patchStatus(name, { step: next, message: e.message.slice(0, 4000) }).catch((err: unknown) => {
        deps.log.warn({ err: String(err) }, 'could not report the step; the final report follows');
      }));
    }, bundle);
  } catch (err) {
    await Promise.all(progress);
    // 6b. The controller has not sealed this node's certificates to our key
    //     yet: nothing was touched; its write wakes us (the requeue is a backstop).
    if (err instanceof AwaitingSealedBundle) {
      deps.log.info({}, err.message);
      return { requeueAfterMs: 5_000 };
    }
    // 7a. Failed: say which step, whether the node was put back, and where the backup is.
    if (err instanceof NodeRotationError) {
      const failedStep = statusStep(err.step);
      deps.log.error({ step: err.step, rolledBack: err.rolledBack }, err.message);
      await deps.patchStatus(name, {
        phase: err.rolledBack ? 'RolledBack' : 'Failed',
        step: failedStep,
        message: failureMessage(spec.nodeName, failedStep, err.detail, err.rolledBack, err.backupDir),
        ...(err.backupDir ? { backupPath: hostPath(err.backupDir) } : {}),
        finishedAt: deps.now().toISOString(),
      });
      deps.sealingKeys.forget(spec.runID);
      return;
    }
    // Anything else (the API, a bug) is retried with backoff by the queue: the
    // journal makes the retry continue where this attempt stopped.
    throw err;
  }
  await Promise.all(progress);

  // 7b. Rotated: every file with its old and new serial, notAfter, whether the
  //     new certificate was seen served, and the backup.
  const files = fileReports(result.files);
  await deps.patchStatus(name, {
    phase: 'Rotated',
    step: 'Done',
    message:
      files.length === 0
        ? `node ${spec.nodeName}: no certificate of this scope lives on this node`
        : `node ${spec.nodeName}: ${files.length} files rotated${result.resumed && !result.alreadyFinished ? ' (resumed after an interruption)' : ''}`,
    files,
    ...(result.backupDir ? { backupPath: hostPath(result.backupDir) } : {}),
    finishedAt: deps.now().toISOString(),
  });
  deps.sealingKeys.forget(spec.runID);
}

/**
 * The pairs the controller sealed to this process's key for this run and node,
 * read fresh (the controller writes them after our Updating report). A box
 * sealed to an earlier key (a restarted agent) is waited past; one sealed to
 * ours that does not open is a failure of the prepare step, nothing touched.
 */
async function openBundle(deps: AgentDeps, name: string, key: SealingKeyPair, sealBy: number): Promise<BundlePairs> {
  const nr = await deps.getFresh(name);
  const box = nr?.sealedBundle;
  if (!nr || !box || box.recipientKey !== key.publicKey) {
    if (deps.now().getTime() > sealBy) {
      throw new NodeRotationError('prepare', `the controller did not seal this node's certificates to this agent within its time (by ${new Date(sealBy).toISOString()}); nothing was changed`, false);
    }
    throw new AwaitingSealedBundle(`waiting for the controller to seal this node's certificates to this agent's key`);
  }
  try {
    const pairs = openForNode(box, key, nr.spec.runID, nr.spec.nodeName);
    deps.log.info({ entries: [...pairs.keys()] }, "opened this node's sealed certificates");
    return pairs;
  } catch (e) {
    throw new NodeRotationError('prepare', `the certificates sealed to this agent do not open: ${(e as Error).message}`, false);
  }
}

class AwaitingSealedBundle extends Error {}

/** spec.action Check: report every certificate of spec.services as found. A host that cannot be read at all is Failed. */
async function check(deps: AgentDeps, name: string, nr: NodeRotation): Promise<void> {
  const { spec } = nr;
  const startedAt = deps.now().toISOString();
  let reports;
  try {
    reports = await deps.runner.check(spec);
  } catch (err) {
    deps.log.error({ err: String(err) }, 'check failed');
    await deps.patchStatus(name, {
      phase: 'Failed',
      runID: spec.runID,
      agent: deps.agentName,
      message: `node ${spec.nodeName}: check failed: ${(err as Error).message ?? String(err)}`.slice(0, 4000),
      startedAt,
      finishedAt: deps.now().toISOString(),
    });
    return;
  }
  const files = checkReports(reports);
  const message = checkMessage(spec.nodeName, files);
  deps.log.info({ files: files.length }, message);
  await deps.patchStatus(name, { phase: 'Checked', runID: spec.runID, agent: deps.agentName, message, files, startedAt, finishedAt: deps.now().toISOString() });
}

/** Why this NodeRotation is not an instruction of the controller for a current run, or undefined when it is. */
export function ownerRefusal(nr: NodeRotation, owner: CertificateRotation | undefined): string | undefined {
  const { spec } = nr;
  const refs = (nr.metadata?.ownerReferences ?? []).filter((r) => r.controller);
  const ref = refs.find((r) => r.apiVersion === API_VERSION && r.kind === CERTIFICATE_ROTATION.kind && r.name === spec.rotation);
  if (refs.length !== 1 || !ref) return `not owned by CertificateRotation ${spec.rotation} (a NodeRotation is created by the certrotator controller for one of its runs)`;
  if (spec.runID !== runID(ref.uid, spec.generation)) return `runID ${spec.runID} is not the one of CertificateRotation ${spec.rotation} (uid ${ref.uid}) generation ${spec.generation}`;
  if (!owner) return `CertificateRotation ${spec.rotation} does not exist`;
  if (owner.metadata?.uid !== ref.uid) return `CertificateRotation ${spec.rotation} has uid ${owner.metadata?.uid}, not the owner's ${ref.uid} (deleted and created again)`;
  if (spec.action === 'Rotate' && owner.status?.runGeneration !== spec.generation) {
    return `CertificateRotation ${spec.rotation} is running generation ${owner.status?.runGeneration ?? 'none'}, not ${spec.generation}`;
  }
  return undefined;
}
