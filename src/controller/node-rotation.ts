// The NodeRotation the controller creates for one node of one run. Everything
// in it is derived from (rotation, run generation, planned node), so a
// controller that restarts between recording intent and creating the object
// builds the very same object under the very same name: the create either
// succeeds once or answers AlreadyExists.
import { API_VERSION, CERTIFICATE_ROTATION, NODE_ROTATION, type NodeAction } from '../api/constants.js';
import { nodeScope, type CertificateRotation } from '../api/certificaterotation.js';
import type { NodeRotation } from '../api/noderotation.js';
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
