// The custom-resource helpers against the real API server, on a throwaway
// cluster-scoped CRD shaped like ours (status subresource): writes fenced by
// resourceVersion succeed at the current version and fail with ConflictError
// at a stale one; the agent-style informer sees only its node's objects.
// Both ways a request can go: the lean transport (src/kube/transport.ts,
// what every component uses) and client-node's CustomObjectsApi (what a
// kubeconfig with a proxy-url falls back to) must behave the same.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { ClusterCustomResource, ConflictError, isAlreadyExists, isConflict, isNotFound, loadKubeConfig, secretReader, type CustomObject } from '../../src/kube/client.js';
import { customResourceInformer } from '../../src/kube/informer.js';
import { transportFor } from '../../src/kube/transport.js';

const GROUP = 'kube-e2e.certrotator.test';
const CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: steps.${GROUP} }
spec:
  group: ${GROUP}
  scope: Cluster
  names: { plural: steps, singular: step, kind: Step }
  versions:
  - name: v1
    served: true
    storage: true
    subresources: { status: {} }
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: { type: object, x-kubernetes-preserve-unknown-fields: true }
          status: { type: object, x-kubernetes-preserve-unknown-fields: true }
`;

type Step = CustomObject<{ node: string }, { phase?: string; attempt?: number }>;

function step(name: string, node: string): Step {
  return { apiVersion: `${GROUP}/v1`, kind: 'Step', metadata: { name, labels: { 'certrotator.io/node': node } }, spec: { node } };
}

beforeAll(async () => {
  await kubectlOk(['apply', '-f', '-'], { input: CRD });
  await kubectlOk(['wait', '--for=condition=Established', `crd/steps.${GROUP}`, '--timeout=60s']);
});
afterAll(async () => {
  await kubectl(['delete', 'crd', `steps.${GROUP}`, '--wait=false']);
});

describe.each([
  ['the lean transport', 'lean', true],
  ['client-node', 'cn', false],
])('ClusterCustomResource through %s against the real API server', (_how, prefix, lean) => {
  let steps: ClusterCustomResource<Step>;
  beforeAll(() => {
    const kc = loadKubeConfig();
    const transport = lean ? transportFor(kc) : undefined;
    if (lean) expect(transport).toBeDefined();
    steps = new ClusterCustomResource<Step>(kc.api((m) => m.CustomObjectsApi), GROUP, 'v1', 'steps', transport);
  });
  // Each way has its own objects: the CRD is shared.
  const n = (name: string): string => `${prefix}-${name}`;

  it('fences status and merge-patch writes by resourceVersion; a stale write is a ConflictError', async () => {
    const created = await steps.create(step(n('s1'), 'rke2-worker-1'));
    const rv0 = created.metadata!.resourceVersion!;
    const updated = await steps.replaceStatus(created, { phase: 'Renewing', attempt: 1 });
    expect(updated.status).toEqual({ phase: 'Renewing', attempt: 1 });
    expect(updated.metadata!.resourceVersion).not.toBe(rv0);

    // Another writer based its decision on the old version: refused, typed, nothing overwritten.
    const stale = await steps.replaceStatus(created, { phase: 'Failed' }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(ConflictError);
    expect(isConflict(stale)).toBe(true);
    expect((stale as ConflictError).resourceVersion).toBe(rv0);
    expect((await steps.get(n('s1'))).status).toEqual({ phase: 'Renewing', attempt: 1 });

    const stalePatch = await steps.mergePatch(n('s1'), { metadata: { resourceVersion: rv0, annotations: { a: 'b' } } }).catch((e: unknown) => e);
    expect(stalePatch).toBeInstanceOf(ConflictError);
    const patched = await steps.mergePatch(n('s1'), { metadata: { resourceVersion: updated.metadata!.resourceVersion, annotations: { a: 'b' } } });
    expect(patched.metadata!.annotations).toEqual({ a: 'b' });
    const statusPatched = await steps.mergePatchStatus(n('s1'), { status: { phase: 'Done' } });
    expect(statusPatched.status).toEqual({ phase: 'Done', attempt: 1 });
    // the status subresource ignores spec changes and vice versa
    expect(statusPatched.spec).toEqual({ node: 'rke2-worker-1' });

    await expect(steps.replaceStatus({ ...created, metadata: { name: n('s1') } }, {})).rejects.toThrow(/unfenced write/);
    const dup = await steps.create(step(n('s1'), 'x')).catch((e: unknown) => e);
    expect(isAlreadyExists(dup)).toBe(true);
    expect(isConflict(dup)).toBe(true);

    await expect(steps.delete(n('s1'), { resourceVersion: rv0 })).rejects.toBeInstanceOf(ConflictError);
    await steps.delete(n('s1'));
    await steps.delete(n('s1')); // already gone: fine
    expect(await steps.tryGet(n('s1'))).toBeUndefined();
    expect(isNotFound(await steps.get(n('s1')).catch((e: unknown) => e))).toBe(true);
  });

  it('an agent-style informer (label selector on its node) caches and enqueues only its node', async () => {
    const kc = loadKubeConfig();
    const keys: string[] = [];
    await steps.create(step(n('mine-1'), n('rke2-worker-2')));
    await steps.create(step(n('other-1'), n('rke2-worker-3')));
    const inf = customResourceInformer(kc, steps, { labelSelector: `certrotator.io/node=${n('rke2-worker-2')}` }).enqueueTo({ add: (k) => keys.push(k) });
    try {
      inf.start();
      await inf.waitForSync();
      expect(inf.keys()).toEqual([n('mine-1')]);
      await steps.create(step(n('other-2'), n('rke2-worker-3')));
      await steps.create(step(n('mine-2'), n('rke2-worker-2')));
      const deadline = Date.now() + 15_000;
      while (!keys.includes(n('mine-2')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(keys).toEqual([n('mine-1'), n('mine-2')]);
      expect(inf.get(n('other-2'))).toBeUndefined();
    } finally {
      inf.stop();
    }
  });
});

describe('ApiTransport against the real API server', () => {
  it('lists in pages from one snapshot: every object once, the first page\'s resourceVersion, no continue token left', async () => {
    const kc = loadKubeConfig();
    const transport = transportFor(kc)!;
    const steps = new ClusterCustomResource<Step>(kc.api((m) => m.CustomObjectsApi), GROUP, 'v1', 'steps', transport);
    const names = ['p-1', 'p-2', 'p-3', 'p-4', 'p-5'];
    for (const name of names) await steps.create(step(name, 'paged'));
    const list = await transport.list<{ items: Step[]; metadata?: { resourceVersion?: string; continue?: string } }>(steps.path, { labelSelector: 'certrotator.io/node=paged' }, { pageSize: 2 });
    expect(list.items.map((s) => s.metadata!.name).sort()).toEqual(names);
    expect(list.metadata?.resourceVersion).toMatch(/^\d+$/);
    expect(list.metadata?.continue).toBeUndefined();
  });

  it('reads a Secret as the API server stores it, and a missing one as undefined', async () => {
    await kubectlOk(['create', 'secret', 'generic', 'kube-e2e-read', '-n', 'default', '--from-literal=tls.crt=PEM']);
    try {
      const read = secretReader(loadKubeConfig());
      const secret = await read('default', 'kube-e2e-read');
      expect(secret?.data?.['tls.crt']).toBe(Buffer.from('PEM').toString('base64'));
      expect(await read('default', 'kube-e2e-absent')).toBeUndefined();
    } finally {
      await kubectl(['delete', 'secret', 'kube-e2e-read', '-n', 'default']);
    }
  });
});
