// The certrotator.io/v1alpha1 API: constants, types inferred from the CRD
// schemas, and the helpers that derive names and durations the same way the
// API server validates them.
export * from './constants.js';
export type { Condition, LabelSelector } from './common.js';
export * from './certificaterotation.js';
export * from './noderotation.js';
export * from './certificateinventory.js';
export * from './names.js';
export * from './duration.js';
export { certificateInventoryCRD, certificateRotationCRD, nodeRotationCRD, renderAllCRDs } from './crds.js';
