// The NodeRotation the controller creates for one node of one run. Everything
// in it is derived from (rotation, run generation, planned node), so a
// controller that restarts between recording intent and creating the object
// builds the very same object under the very same name: the create either
// succeeds once or answers AlreadyExists.
import { API_VERSION, CERTIFICATE_ROTATION, NODE_ROTATION, type NodeAction } from '../api/constants.js';
import { nodeScope, type CertificateRotation } from '../api/certificaterotation.js';
import type { FileReport, NodeRotation, NodeRotationStatus } from '../api/noderotation.js';
import { stripManagedFields } from '../kube/informer.js';
import { nodeRotationLabels, nodeRotationName, runID } from '../api/names.js';
import type { Distribution } from '../distributions/services.js';
import type { PlannedNode } from './plan.js';

export function buildNodeRotation(
  rotation: CertificateRotation,
  runGeneration: number,
  distribution: Distribution,
  node: PlannedNode,
  action: NodeAction = 'Rotate',
): NodeRotation {
  const name = rotation.metadata.name!;
  const spec = rotation.spec;
  return {
    apiVersion: API_VERSION,
    kind: NODE_ROTATION.kind,
    metadata: {
      name: nodeRotationName(name, runGeneration, node.name),
      labels: nodeRotationLabels(name, runGeneration, node.name),
      // Garbage-collected with its rotation. The finalizer on the rotation,
      // not blockOwnerDeletion, is what keeps a node from being cut off mid-step.
      ownerReferences: [
        { apiVersion: API_VERSION, kind: CERTIFICATE_ROTATION.kind, name, uid: rotation.metadata.uid!, controller: true },
      ],
    },
    spec: {
      rotation: name,
      generation: runGeneration,
      runID: runID(rotation.metadata.uid!, runGeneration),
      nodeName: node.name,
      role: node.role,
      action,
      distribution,
      scope: nodeScope(spec.scope),
      services: node.services,
      restart: true,
      timeout: spec.strategy.nodeTimeout,
      onFailure: spec.strategy.onFailure,
    },
  };
}

/**
 * What the controller's NodeRotation cache keeps of each object: what it reads
 * (spec, phase, step, times, message, the run's ID, the sealing key, and per
 * file the service, path, new serial and notAfter). A worker's report lists
 * every certificate file with its old serial, backup path and served check,
 * which only people and the agent read; at 5,000 nodes, two runs of them were
 * the larger part of the controller's heap. The managed fields go too.
 */
export function cacheView(nr: NodeRotation): NodeRotation {
  const obj = stripManagedFields(nr);
  const st = obj.status;
  if (!st) return obj;
  const { backupPath: _backupPath, agent: _agent, files, ...kept } = st;
  if (files === undefined && _backupPath === undefined && _agent === undefined) return obj;
  const status: NodeRotationStatus = kept;
  if (files !== undefined) {
    status.files = files.map((f) => {
      const out: FileReport = { service: f.service, path: f.path };
      if (f.newSerial !== undefined) out.newSerial = f.newSerial;
      if (f.newNotAfter !== undefined) out.newNotAfter = f.newNotAfter;
      if (f.notAfter !== undefined) out.notAfter = f.notAfter;
      return out;
    });
  }
  return { ...obj, status };
}
