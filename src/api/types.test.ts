// Compile-time checks that the inferred types say what the schema says. These
// lines are type-checked by `npm run typecheck` (a wrong type fails it) and run
// by jest (so the objects also pass the runtime assertions).
import { describe, expect, it } from '@jest/globals';
import type { CertificateRotationSpec, CertificateRotationSpecInput, CertificateRotationStatus } from './certificaterotation.js';
import type { NodeRotationSpec } from './noderotation.js';
import { certificateRotationSpecSchema } from './certificaterotation.js';
import { nodeRotationSpecSchema } from './noderotation.js';

describe('types inferred from the schema', () => {
  it('a user may write a spec with only what has no default', () => {
    const input: CertificateRotationSpecInput = { scope: 'Service', service: 'api-server' };
    // @ts-expect-error scope is an enum
    const bad: CertificateRotationSpecInput = { scope: 'Everything' };
    expect([input, bad]).toHaveLength(2);
  });

  it('as read back, defaulted fields are present and optional ones may be absent', () => {
    const read: CertificateRotationSpec = {
      scope: 'All',
      mode: 'Apply',
      paused: false,
      strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback' },
    };
    // @ts-expect-error strategy is defaulted, so always present when read
    const missing: CertificateRotationSpec = { scope: 'All', mode: 'Apply', paused: false };
    const status: CertificateRotationStatus = { observedGeneration: -1 };
    expect([read, missing, status]).toHaveLength(3);
  });

  it('the required lists in the wire schema match the types', () => {
    expect(certificateRotationSpecSchema.openAPI.required).toBeUndefined();
    expect(nodeRotationSpecSchema.openAPI.required).toEqual([
      'rotation',
      'generation',
      'runID',
      'nodeName',
      'role',
      'distribution',
      'scope',
      'services',
    ]);
    const spec: NodeRotationSpec = {
      rotation: 'r',
      generation: 1,
      runID: 'u-g1',
      nodeName: 'n',
      role: 'worker',
      action: 'Rotate',
      distribution: 'rke2',
      scope: 'All',
      services: [],
      restart: true,
      timeout: '10m',
      onFailure: 'Halt',
    };
    expect(spec.onFailure).toBe('Halt');
  });
});
