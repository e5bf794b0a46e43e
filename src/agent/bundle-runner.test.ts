// The agent's side of the RKE bundle: a NodeRotation naming a bundle Secret
// has it read (by name) only when a new run is prepared, installs it on a
// worker that has no CA key, and refuses a bundle issued for another run or a
// missing one before touching the host.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeRotationSpec } from '../api/noderotation.js';
import { bundleSecretData, BUNDLE_RUN_ANNOTATION, issueBundle } from '../controller/rke-bundle.js';
import type { RestartExecutor } from '../host/restart.js';
import { clusterCas, rkeNode, type FixtureNode } from '../simulation/fixtures.js';
import { fullClusterStateFromTrees } from '../simulation/rke-state.js';
import { changedPaths, copyDir, snapshotTree } from '../simulation/tree.js';
import { CatalogHostRunner, type SecretReader } from './host-runner.js';

const SSL = 'etc/kubernetes/ssl';
let work: string;
let worker: FixtureNode;
let data: Record<string, string>;
let n = 0;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-bundle-runner-'));
  const cp = await rkeNode(join(work, 'cp'), { nodeName: 'cp', nodeIP: '127.0.6.1', roles: ['etcd', 'controlplane'] });
  worker = await rkeNode(join(work, 'w'), { nodeName: 'w', nodeIP: '127.0.6.2', roles: ['worker'], cas: await clusterCas(cp) });
  data = bundleSecretData(await issueBundle(await fullClusterStateFromTrees([cp]), ['kube-proxy'], new Date()));
}, 60_000);
afterAll(() => fs.rm(work, { recursive: true, force: true }));

const spec: NodeRotationSpec = {
  rotation: 'r', generation: 2, runID: 'uid-r-g2', nodeName: 'w', role: 'worker', action: 'Rotate', distribution: 'rke',
  scope: 'Service', services: ['kube-proxy'], restart: false, timeout: '20s', onFailure: 'Rollback',
  bundleSecretRef: { namespace: 'certrotator-system', name: 'certrotator-rke-bundle' },
};

async function runWith(readSecret: SecretReader) {
  const root = join(work, `run-${++n}`);
  await copyDir(worker.root, root);
  const before = await snapshotTree(root, (p) => /ssl-backup-/.test(p));
  const runner = new CatalogHostRunner({ hostRoot: root, nodeIP: '127.0.6.2', executor: {} as RestartExecutor, readSecret });
  const result = await runner.run(spec, () => {}).catch((e: unknown) => e as Error);
  return { root, result, changed: changedPaths(before, await snapshotTree(root, (p) => /ssl-backup-/.test(p))) };
}

describe('CatalogHostRunner with spec.bundleSecretRef', () => {
  it('reads the named Secret and installs its pair on a worker without the CA key', async () => {
    const asked: string[] = [];
    const { root, result, changed } = await runWith(async (ref) => {
      asked.push(`${ref.namespace}/${ref.name}`);
      return { data, annotations: { [BUNDLE_RUN_ANNOTATION]: 'uid-r-g2' } };
    });
    expect(result).not.toBeInstanceOf(Error);
    expect(asked).toEqual(['certrotator-system/certrotator-rke-bundle']);
    expect(await fs.readFile(join(root, SSL, 'kube-proxy.pem'), 'utf8')).toBe(Buffer.from(data['kube-proxy.pem']!, 'base64').toString('utf8'));
    expect(changed).toEqual(expect.arrayContaining([`${SSL}/kube-proxy.pem`, `${SSL}/kube-proxy-key.pem`]));
  }, 30_000);

  it.each([
    ['issued for another run', async () => ({ data, annotations: { [BUNDLE_RUN_ANNOTATION]: 'uid-r-g1' } }), /issued for run uid-r-g1, not this run uid-r-g2/],
    ['missing', async () => undefined, /bundle Secret certrotator-system\/certrotator-rke-bundle does not exist/],
  ] as [string, SecretReader, RegExp][])('a bundle %s is refused at prepare, nothing changed', async (_what, reader, message) => {
    const { result, changed } = await runWith(reader);
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toMatch(/^prepare: /);
    expect((result as Error).message).toMatch(message);
    expect(changed).toEqual([]);
  }, 30_000);
});
