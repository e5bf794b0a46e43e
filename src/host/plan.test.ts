// Host planning on RKE trees: which roles a host's files say it has and which
// files a scope renews there. The external-etcd case is the one a {host}
// pattern gets wrong: kube-etcd-client*.pem fit kube-etcd-{host}.pem.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rkeCatalog } from '../distributions/index.js';
import { addExternalEtcdClient, rkeNode, type FixtureNode } from '../simulation/fixtures.js';
import { detectRoles, planNode, type Scope } from './plan.js';
import { openHost } from './rotation.js';

const DATA_DIR = rkeCatalog.defaultDataDir;
let work: string;
const trees: Record<string, FixtureNode> = {};

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'host-plan-'));
  // External etcd: a controlplane(+worker) host with the client material from cluster.yml, no etcd role.
  trees.externalEtcdCp = await rkeNode(join(work, 'ext'), { nodeName: 'cp', nodeIP: '127.0.6.1', roles: ['controlplane', 'worker'] });
  await addExternalEtcdClient(trees.externalEtcdCp);
  trees.internalEtcdCp = await rkeNode(join(work, 'int'), { nodeName: 'cp', nodeIP: '127.0.6.2', roles: ['etcd', 'controlplane'], etcdIPs: ['127.0.6.2', '127.0.6.3'] });
}, 60_000);
afterAll(() => fs.rm(work, { recursive: true, force: true }));

const host = (t: FixtureNode) => openHost(rkeCatalog, t.root, DATA_DIR);
const names = (files: readonly { cert?: string }[]) => files.map((f) => f.cert!.split('/').pop()!).sort();

describe('RKE role markers', () => {
  test.each([
    ['an external-etcd controlplane host (kube-etcd-client*.pem present) is not an etcd host', 'externalEtcdCp', ['controlplane', 'worker']],
    ['a host holding kube-etcd-<ip>.pem is an etcd host', 'internalEtcdCp', ['controlplane', 'etcd', 'worker']],
  ])('%s', async (_what, tree, roles) => {
    expect((await detectRoles(rkeCatalog, host(trees[tree]!), { dataDir: DATA_DIR })).sort()).toEqual(roles);
  });
});

describe('planNode on RKE hosts', () => {
  test.each<[string, string, Scope, string[]]>([
    [
      'external etcd, scope All: every RKE-issued file, never the kube-etcd-client* files from cluster.yml',
      'externalEtcdCp',
      { all: true },
      ['kube-apiserver-proxy-client.pem', 'kube-apiserver.pem', 'kube-controller-manager.pem', 'kube-node.pem', 'kube-proxy.pem', 'kube-scheduler.pem'],
    ],
    ['internal etcd, service etcd: every etcd host pair', 'internalEtcdCp', { services: ['etcd'] }, ['kube-etcd-127-0-6-2.pem', 'kube-etcd-127-0-6-3.pem']],
  ])('%s', async (_what, tree, scope, files) => {
    const h = host(trees[tree]!);
    const roles = await detectRoles(rkeCatalog, h, { dataDir: DATA_DIR });
    expect(names(await planNode(rkeCatalog, h, scope, roles, { dataDir: DATA_DIR }))).toEqual(files);
  });

  test('external etcd with the etcd role forced (--roles): no etcd file to plan, kube-etcd-client is never taken for one', async () => {
    await expect(planNode(rkeCatalog, host(trees.externalEtcdCp!), { services: ['etcd'] }, ['etcd', 'controlplane'], { dataDir: DATA_DIR })).rejects.toThrow(
      /kube-etcd-\{host\}\.pem: no file matches/,
    );
  });
});
