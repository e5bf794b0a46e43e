// The agent's side of the RKE bundle: a NodeRotation naming a bundle has the
// pairs fetched (opened from what the controller sealed to this agent) only
// when a new run is prepared, installs them on a worker that has no CA key,
// and refuses a missing pair or no way to receive them before touching the host.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeRotationSpec } from '../api/noderotation.js';
import { issueBundle } from '../controller/rke-bundle.js';
import type { RestartExecutor } from '../host/restart.js';
import { clusterCas, rkeNode, type FixtureNode } from '../simulation/fixtures.js';
import { fullClusterStateFromTrees } from '../simulation/rke-state.js';
import { changedPaths, copyDir, snapshotTree } from '../simulation/tree.js';
import { CatalogHostRunner, type BundlePairs } from './host-runner.js';

const SSL = 'etc/kubernetes/ssl';
let work: string;
let worker: FixtureNode;
let pairs: BundlePairs;
let n = 0;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-bundle-runner-'));
  const cp = await rkeNode(join(work, 'cp'), { nodeName: 'cp', nodeIP: '127.0.6.1', roles: ['etcd', 'controlplane'] });
  worker = await rkeNode(join(work, 'w'), { nodeName: 'w', nodeIP: '127.0.6.2', roles: ['worker'], cas: await clusterCas(cp) });
  pairs = await issueBundle(await fullClusterStateFromTrees([cp]), ['kube-proxy'], new Date());
}, 60_000);
afterAll(() => fs.rm(work, { recursive: true, force: true }));

const spec: NodeRotationSpec = {
  rotation: 'r', generation: 2, runID: 'uid-r-g2', nodeName: 'w', role: 'worker', action: 'Rotate', distribution: 'rke',
  scope: 'Service', services: ['kube-proxy'], restart: false, timeout: '20s', onFailure: 'Rollback',
  bundleSecretRef: { namespace: 'certrotator-system', name: 'certrotator-rke-bundle' },
};

async function runWith(bundle: (() => Promise<BundlePairs>) | undefined) {
  const root = join(work, `run-${++n}`);
  await copyDir(worker.root, root);
  const before = await snapshotTree(root, (p) => /ssl-backup-/.test(p));
  const runner = new CatalogHostRunner({ hostRoot: root, nodeIP: '127.0.6.2', executor: {} as RestartExecutor });
  const result = await runner.run(spec, () => {}, bundle).catch((e: unknown) => e as Error);
  return { root, result, changed: changedPaths(before, await snapshotTree(root, (p) => /ssl-backup-/.test(p))) };
}

describe('CatalogHostRunner with spec.bundleSecretRef', () => {
  it('fetches the pairs once and installs them on a worker without the CA key', async () => {
    let asked = 0;
    const { root, result, changed } = await runWith(async () => {
      asked++;
      return pairs;
    });
    expect(result).not.toBeInstanceOf(Error);
    expect(asked).toBe(1);
    expect(await fs.readFile(join(root, SSL, 'kube-proxy.pem'), 'utf8')).toBe(pairs.get('kube-proxy')!.certPem);
    expect(changed.sort()).toEqual([`${SSL}/kube-proxy-key.pem`, `${SSL}/kube-proxy.pem`]);
  }, 30_000);

  it.each([
    ['without a way to receive the pairs', undefined, /no way to receive the controller-issued certificates/],
    ['a bundle without this node\'s pair', async () => new Map([['kube-node', pairs.get('kube-proxy')!]]), /kube-proxy\.pem: is not in the controller-issued bundle/],
    ['a pair whose key is not the certificate\'s', async () => new Map([['kube-proxy', { certPem: pairs.get('kube-proxy')!.certPem, keyPem: await fs.readFile(join(worker.root, SSL, 'kube-node-key.pem'), 'utf8') }]]), /key/i],
  ] as [string, (() => Promise<BundlePairs>) | undefined, RegExp][])('%s: refused at prepare, nothing changed', async (_what, bundle, message) => {
    const { result, changed } = await runWith(bundle);
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toMatch(/^prepare: /);
    expect((result as Error).message).toMatch(message);
    expect(changed).toEqual([]);
  }, 30_000);
});
