// Rolling the workload that serves a renewed Secret (issue 13 §5), as two pure
// pieces: the patch that starts a rollout, and the judgement of whether it has
// finished, by the workload's own strategy. The judgement follows what
// `kubectl rollout status` decides (kubectl pkg/polymorphichelpers/rollout_status.go),
// so a person who runs it sees the same answer as the run's status:
//   - nothing counts until the controller has observed the patched generation;
//   - a Deployment past its progressDeadlineSeconds has failed;
//   - every replica updated, no old one left, every updated one available;
//   - DaemonSet and StatefulSet only roll by themselves with RollingUpdate:
//     with OnDelete a template change replaces no pod, so waiting would only
//     run out the clock; that is a failure with the reason, at once.
// Run by target-steps.ts (scope: Secrets, mode: Apply).
import { GROUP } from '../../api/constants.js';

export type WorkloadKind = 'Deployment' | 'DaemonSet' | 'StatefulSet';

/** The annotations put on the pod template; a changed template is what makes the controller replace the pods. */
export const RESTARTED_AT_ANNOTATION = `${GROUP}/restartedAt`;
export const ROTATION_ANNOTATION = `${GROUP}/rotation`;
export const SERVING_SERIAL_ANNOTATION = `${GROUP}/serving-serial`;

/** Each roll annotation, by the field of status.secretRun.targets[].templateBefore that keeps its value from before the run. */
export const ROLL_ANNOTATIONS = { restartedAt: RESTARTED_AT_ANNOTATION, rotation: ROTATION_ANNOTATION, servingSerial: SERVING_SERIAL_ANNOTATION } as const;

/**
 * The pod template annotations that roll the workload, as `kubectl rollout restart`
 * does with its own; ours also say which rotation (name/g<generation>) and the serial
 * the new pods must serve, so a person reading the pod template sees why it changed.
 */
export function rollAnnotations(rotation: string, serial: string, now: Date): Record<string, string> {
  return { [RESTARTED_AT_ANNOTATION]: now.toISOString(), [ROTATION_ANNOTATION]: rotation.slice(0, 256), [SERVING_SERIAL_ANNOTATION]: serial.slice(0, 64) };
}

/** The fields of a workload the judgement reads (as the API returns them). */
export interface WorkloadState {
  kind: WorkloadKind;
  metadata: { namespace?: string; name?: string; generation?: number };
  spec?: {
    replicas?: number;
    updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } };
  };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    readyReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
    desiredNumberScheduled?: number;
    updatedNumberScheduled?: number;
    numberAvailable?: number;
    conditions?: { type: string; status?: string; reason?: string; message?: string }[];
  };
}

export type Rollout = { state: 'Done'; message: string } | { state: 'Waiting'; message: string } | { state: 'Failed'; message: string };

const n = (v: number | undefined): number => v ?? 0;

export function rolloutOf(w: WorkloadState): Rollout {
  const name = `${w.kind} ${w.metadata.namespace ?? ''}/${w.metadata.name ?? ''}`;
  const waiting = (why: string): Rollout => ({ state: 'Waiting', message: `${name}: ${why}` });
  const failed = (why: string): Rollout => ({ state: 'Failed', message: `${name}: ${why}` });
  const status = w.status ?? {};

  if (w.kind !== 'Deployment') {
    const strategy = w.spec?.updateStrategy?.type ?? 'RollingUpdate';
    if (strategy !== 'RollingUpdate') {
      return failed(`its updateStrategy is ${strategy}: a changed pod template replaces no pod, so the renewed certificate would never be loaded; delete its pods by hand or switch it to RollingUpdate`);
    }
    // A partition keeps the pods below it on the old template on purpose: they would keep serving the old certificate.
    const partition = w.spec?.updateStrategy?.rollingUpdate?.partition ?? 0;
    if (w.kind === 'StatefulSet' && partition > 0) {
      return failed(`its rollingUpdate.partition is ${partition}: the pods below it keep the old template and the old certificate; set the partition to 0 first`);
    }
  }
  if (n(w.metadata.generation) > n(status.observedGeneration)) return waiting('its controller has not observed the change yet');

  switch (w.kind) {
    case 'Deployment': {
      const progressing = status.conditions?.find((c) => c.type === 'Progressing');
      if (progressing?.reason === 'ProgressDeadlineExceeded') return failed(`exceeded its progress deadline${progressing.message ? ` (${progressing.message})` : ''}`);
      const want = w.spec?.replicas ?? 1;
      if (n(status.updatedReplicas) < want) return waiting(`${n(status.updatedReplicas)} of ${want} new replicas updated`);
      if (n(status.replicas) > n(status.updatedReplicas)) return waiting(`${n(status.replicas) - n(status.updatedReplicas)} old replicas pending termination`);
      if (n(status.availableReplicas) < n(status.updatedReplicas)) return waiting(`${n(status.availableReplicas)} of ${n(status.updatedReplicas)} updated replicas available`);
      return { state: 'Done', message: `${name}: rolled out (${n(status.updatedReplicas)} replicas updated and available)` };
    }
    case 'DaemonSet': {
      const want = n(status.desiredNumberScheduled);
      if (n(status.updatedNumberScheduled) < want) return waiting(`${n(status.updatedNumberScheduled)} of ${want} updated pods scheduled`);
      if (n(status.numberAvailable) < want) return waiting(`${n(status.numberAvailable)} of ${want} updated pods available`);
      return { state: 'Done', message: `${name}: rolled out (${want} pods updated and available)` };
    }
    case 'StatefulSet': {
      const want = w.spec?.replicas ?? 1;
      if (n(status.readyReplicas) < want) return waiting(`${n(status.readyReplicas)} of ${want} pods ready`);
      if (status.updateRevision !== status.currentRevision) return waiting(`${n(status.updatedReplicas)} of ${want} pods at the new revision`);
      return { state: 'Done', message: `${name}: rolled out (${want} pods at revision ${status.updateRevision ?? '?'})` };
    }
  }
}
