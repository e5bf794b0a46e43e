// Installing controller-issued material (RKE bundle) instead of signing on the
// host: a node without the CA key rotates, shared certificates get the same
// serial everywhere, and anything that does not chain to this node's CA or
// does not match its key is refused before a byte changes.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rkeCatalog } from '../distributions/rke/catalog.js';
import { issueBundle } from '../controller/rke-bundle.js';
import { readCertificateFile, serialOf } from '../pki/certfile.js';
import { clusterCas, rkeNode, type FixtureNode } from '../simulation/fixtures.js';
import { fullClusterStateFromTrees } from '../simulation/rke-state.js';
import { changedPaths, copyDir, snapshotTree } from '../simulation/tree.js';
import type { ProvidedMaterial } from './prepare.js';
import { NodeRotationError, openHost, runNodeRotation } from './rotation.js';

const SSL = 'etc/kubernetes/ssl';
let work: string;
let cp: FixtureNode;
let w1: FixtureNode;
let w2: FixtureNode;
let other: FixtureNode;
let stateText: string;
let n = 0;

const toProvided = (m: ReadonlyMap<string, { certPem: string; keyPem: string }>): ProvidedMaterial =>
  new Map([...m].map(([name, p]) => [`${SSL}/${name}.pem`, { certPem: p.certPem, keyPem: p.keyPem }]));

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-provided-'));
  cp = await rkeNode(join(work, 'cp'), { nodeName: 'cp', nodeIP: '127.0.8.1', roles: ['etcd', 'controlplane'] });
  const cas = await clusterCas(cp);
  w1 = await rkeNode(join(work, 'w1'), { nodeName: 'w1', nodeIP: '127.0.8.2', roles: ['worker'], cas });
  w2 = await rkeNode(join(work, 'w2'), { nodeName: 'w2', nodeIP: '127.0.8.3', roles: ['worker'], cas });
  // Another cluster: same names, another kube-ca.
  other = await rkeNode(join(work, 'other'), { nodeName: 'cp', nodeIP: '127.0.8.1', roles: ['etcd', 'controlplane'] });
  stateText = await fullClusterStateFromTrees([cp, w1, w2]);
}, 60_000);

afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

async function copyOf(f: FixtureNode): Promise<FixtureNode> {
  const root = join(work, `run-${++n}`);
  await copyDir(f.root, root);
  return { ...f, root };
}

const rotate = (node: FixtureNode, services: string[], provided?: ProvidedMaterial) =>
  runNodeRotation({
    catalog: rkeCatalog,
    host: openHost(rkeCatalog, node.root, node.dataDir),
    scope: { services },
    roles: [...node.roles],
    dataDir: node.dataDir,
    nodeIP: node.nodeIP,
    restart: false,
    ...(provided ? { provided } : {}),
  });

const serialAt = async (node: FixtureNode, rel: string) => serialOf(readCertificateFile(await fs.readFile(join(node.root, rel), 'utf8'), rel, 'pem').leaf);
const snap = (node: FixtureNode) => snapshotTree(node.root, (p) => /ssl-backup-/.test(p));

describe('runNodeRotation with provided material', () => {
  test('workers without the CA key install the bundle; kube-node gets the same serial on every node', async () => {
    const bundle = await issueBundle(stateText, ['kubelet', 'kube-proxy'], new Date());
    const a = await copyOf(w1);
    const b = await copyOf(w2);
    const c = await copyOf(cp);
    expect(await fs.stat(join(a.root, SSL, 'kube-ca-key.pem')).catch(() => 'absent')).toBe('absent');
    for (const node of [a, b, c]) {
      const r = await rotate(node, ['kubelet', 'kube-proxy'], toProvided(bundle));
      expect(r.files.map((f) => [f.path, f.newSerial]).sort()).toEqual(
        [[`${SSL}/kube-node.pem`, bundle.get('kube-node')!.serial], [`${SSL}/kube-proxy.pem`, bundle.get('kube-proxy')!.serial]].sort(),
      );
      expect(await serialAt(node, `${SSL}/kube-node.pem`)).toBe(bundle.get('kube-node')!.serial);
      expect(await fs.readFile(join(node.root, SSL, 'kube-node-key.pem'), 'utf8')).toBe(bundle.get('kube-node')!.keyPem);
      expect((await fs.stat(join(node.root, SSL, 'kube-node-key.pem'))).mode & 0o777).toBe(0o600);
    }
  }, 60_000);

  test('without a bundle a worker still refuses (the offline behaviour is unchanged)', async () => {
    const a = await copyOf(w1);
    const before = await snap(a);
    await expect(rotate(a, ['kube-proxy'])).rejects.toThrow(/kube-ca-key\.pem: missing/);
    expect(changedPaths(before, await snap(a))).toEqual([]);
  });

  const refusals: [string, () => Promise<ProvidedMaterial>, RegExp][] = [
    [
      'a certificate from another CA (same subject, same CA name)',
      async () => {
        const foreign = await issueBundle(await fullClusterStateFromTrees([other]), ['kube-proxy'], new Date());
        return toProvided(foreign);
      },
      /kube-proxy\.pem \(controller-issued bundle\).*not signed by this node's CA/,
    ],
    [
      'a key that does not match the certificate',
      async () => {
        const m = await issueBundle(stateText, ['kube-proxy', 'kubelet'], new Date());
        return new Map([[`${SSL}/kube-proxy.pem`, { certPem: m.get('kube-proxy')!.certPem, keyPem: m.get('kube-node')!.keyPem }]]);
      },
      /kube-proxy-key\.pem \(controller-issued bundle\).*private key does not match/,
    ],
    [
      'the certificate of another file',
      async () => {
        const m = await issueBundle(stateText, ['kubelet'], new Date());
        return new Map([[`${SSL}/kube-proxy.pem`, { certPem: m.get('kube-node')!.certPem, keyPem: m.get('kube-node')!.keyPem }]]);
      },
      /names subject .*system:node.*the file it replaces/,
    ],
    ['a bundle that lacks a file in scope', async () => new Map(), /kube-proxy\.pem.*not in the controller-issued bundle/],
  ];
  test.each(refusals)('refuses %s at prepare, changing nothing', async (_what, make, message) => {
    const a = await copyOf(w1);
    const before = await snap(a);
    const err = await rotate(a, ['kube-proxy'], await make()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodeRotationError);
    expect((err as NodeRotationError).step).toBe('prepare');
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('PRIVATE KEY');
    expect(changedPaths(before, await snap(a))).toEqual([]);
  }, 30_000);
});
