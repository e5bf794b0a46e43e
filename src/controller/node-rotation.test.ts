// The controller's NodeRotation cache keeps what the controller reads and
// nothing else (cacheView): run.ts applies it to every listed and watched object.
import { describe, expect, it } from '@jest/globals';
import type { NodeRotation } from '../api/noderotation.js';
import { cacheView } from './node-rotation.js';

const report = (): NodeRotation =>
  ({
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'NodeRotation',
    metadata: { name: 'r-1-w1', resourceVersion: '9', labels: { a: 'b' }, managedFields: [{ manager: 'agent' }] },
    spec: { rotation: 'r', generation: 1, runID: 'x', nodeName: 'w1', role: 'worker', services: ['kubelet'], action: 'Rotate' },
    status: {
      phase: 'Rotated',
      step: 'Done',
      runID: 'x',
      agent: 'certrotator-agent-abcde',
      message: 'rotated 2 files',
      startedAt: '2026-12-05T07:00:00Z',
      finishedAt: '2026-12-05T07:00:02Z',
      backupPath: '/var/lib/rancher/rke2/agent/tls-1764918000',
      sealingKey: 'k',
      files: [
        {
          service: 'kubelet',
          path: '/var/lib/rancher/rke2/agent/serving-kubelet.crt',
          oldSerial: 'AA',
          newSerial: 'BB',
          newNotAfter: '2027-12-05T07:00:00Z',
          backupPath: '/var/lib/rancher/rke2/agent/tls-1764918000/serving-kubelet.crt',
          servedVerified: true,
        },
        { service: 'kubelet', path: '/var/lib/rancher/rke2/agent/client-kubelet.crt', notAfter: '2027-01-01T00:00:00Z', error: 'not readable' },
      ],
    },
  }) as unknown as NodeRotation;

describe('cacheView', () => {
  it('keeps spec, phase, step, times, message, runID, sealingKey, and per file the service, path, new serial and the notAfters', () => {
    const view = cacheView(report());
    expect(view.spec).toEqual(report().spec);
    expect(view.metadata).toEqual({ name: 'r-1-w1', resourceVersion: '9', labels: { a: 'b' } });
    expect(view.status).toEqual({
      phase: 'Rotated',
      step: 'Done',
      runID: 'x',
      message: 'rotated 2 files',
      startedAt: '2026-12-05T07:00:00Z',
      finishedAt: '2026-12-05T07:00:02Z',
      sealingKey: 'k',
      files: [
        { service: 'kubelet', path: '/var/lib/rancher/rke2/agent/serving-kubelet.crt', newSerial: 'BB', newNotAfter: '2027-12-05T07:00:00Z' },
        { service: 'kubelet', path: '/var/lib/rancher/rke2/agent/client-kubelet.crt', notAfter: '2027-01-01T00:00:00Z' },
      ],
    });
  });

  it('a NodeRotation with no report yet is kept as it is (without managed fields)', () => {
    const { status: _none, ...fresh } = report();
    expect(cacheView(structuredClone(fresh) as NodeRotation)).toEqual({ ...fresh, metadata: { name: 'r-1-w1', resourceVersion: '9', labels: { a: 'b' } } });
  });
});
