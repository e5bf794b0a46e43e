// collectChecks: the agents' Check reports folded into status.plan.
import { describe, expect, it } from '@jest/globals';
import type { PlannedNodeStatus } from '../api/certificaterotation.js';
import type { NodeRotation, NodeRotationStatus } from '../api/noderotation.js';
import { collectChecks, earliestByService } from './plan-mode.js';

const planned: PlannedNodeStatus[] = ['s1', 'w1', 'w2', 'w3'].map((name, i) => ({
  name,
  role: i === 0 ? 'etcd,controlplane' : 'worker',
  batch: i,
  services: i === 0 ? ['etcd', 'kubelet'] : ['kubelet'],
}));

function check(node: string, status?: Partial<NodeRotationStatus>, runID = 'u-g1'): NodeRotation {
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'NodeRotation',
    metadata: { name: `p-g1-${node}` },
    spec: { rotation: 'p', generation: 1, runID: 'u-g1', nodeName: node, role: 'worker', action: 'Check', distribution: 'rke2', scope: 'All', services: [], restart: true, timeout: '10m', onFailure: 'Rollback' },
    ...(status ? { status: { phase: 'Pending', runID, ...status } } : {}),
  };
}

const file = (service: string, node: string, notAfter?: string, error?: string) => ({
  service,
  path: `/var/lib/rancher/rke2/${node}/${service}.crt`,
  ...(notAfter ? { notAfter } : {}),
  ...(error ? { error } : {}),
});

describe('collectChecks', () => {
  it('sorts what each node answered into files, earliest notAfter per service, and who is missing', () => {
    const out = collectChecks(planned, [
      check('s1', { phase: 'Checked', files: [file('etcd', 's1', '2027-03-01T00:00:00Z'), file('kubelet', 's1', '2027-01-10T00:00:00Z')] }),
      check('w1', { phase: 'Checked', files: [file('kubelet', 'w1', '2026-12-31T00:00:00Z'), file('kubelet', 'w1x', undefined, 'missing')] }),
      check('w2', { phase: 'Updating' }),
      check('w3', { phase: 'Checked', files: [] }, 'u-g0'), // a report about another run
    ]);
    expect(out.reported).toBe(2);
    expect(out.unsent).toEqual([]);
    expect(out.silent).toEqual(['w2', 'w3']);
    expect(out.failed).toEqual([]);
    expect(out.plan.earliestExpiry).toEqual([
      { service: 'kubelet', notAfter: '2026-12-31T00:00:00Z', node: 'w1', path: '/var/lib/rancher/rke2/w1/kubelet.crt' },
      { service: 'etcd', notAfter: '2027-03-01T00:00:00Z', node: 's1', path: '/var/lib/rancher/rke2/s1/etcd.crt' },
    ]);
    expect(out.plan.nodes.map((n) => n.files)).toEqual([
      ['/var/lib/rancher/rke2/s1/etcd.crt', '/var/lib/rancher/rke2/s1/kubelet.crt'],
      ['/var/lib/rancher/rke2/w1/kubelet.crt', '/var/lib/rancher/rke2/w1x/kubelet.crt'],
      undefined,
      undefined,
    ]);
    expect(out.perNode).toEqual([
      { node: 's1', service: 'etcd', notAfter: '2027-03-01T00:00:00Z' },
      { node: 's1', service: 'kubelet', notAfter: '2027-01-10T00:00:00Z' },
      { node: 'w1', service: 'kubelet', notAfter: '2026-12-31T00:00:00Z' },
    ]);
  });

  it('names unsent and failed nodes, and keeps file lists only while they fit the budget', () => {
    const out = collectChecks(
      planned,
      [
        check('s1', { phase: 'Checked', files: [file('etcd', 's1', '2027-03-01T00:00:00Z')] }),
        check('w1', { phase: 'Checked', files: [file('kubelet', 'w1', '2027-03-01T00:00:00Z')] }),
        check('w2', { phase: 'Failed', message: 'node w2: check failed' }),
      ],
      50,
    );
    expect(out.unsent).toEqual(['w3']);
    expect(out.failed).toEqual(['w2']);
    expect(out.reported).toBe(3);
    expect(out.plan.nodes[0]!.files).toEqual(['/var/lib/rancher/rke2/s1/etcd.crt']);
    expect(out.plan.nodes[1]!.files).toBeUndefined();
    expect(out.filesOmitted).toBe(1);
  });
});

describe('earliestByService', () => {
  it('keeps the earliest date per service from the named field, ignoring files without one', () => {
    const files = [
      { service: 'etcd', path: '/a', notAfter: '2027-03-01T00:00:00Z', newNotAfter: '2028-01-01T00:00:00Z' },
      { service: 'etcd', path: '/b', notAfter: '2027-01-01T00:00:00Z' },
      { service: 'kubelet', path: '/c', error: 'missing' },
      { service: 'kubelet', path: '/d', newNotAfter: '2027-12-01T00:00:00Z' },
    ];
    expect([...earliestByService(files, 'notAfter')]).toEqual([['etcd', '2027-01-01T00:00:00Z']]);
    expect([...earliestByService(files, 'newNotAfter')]).toEqual([['etcd', '2028-01-01T00:00:00Z'], ['kubelet', '2027-12-01T00:00:00Z']]);
  });
});
