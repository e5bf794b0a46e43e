// Node trees made by upstream's own code, renewed by certrotator, and judged
// against what upstream made, not against our catalog:
//  - RKE2: rancher/dynamiclistener, from a hand-written table of k3s's deps.go
//    (test/upstream/rke2tree);
//  - RKE: rke's own pki package, GenerateRKECerts + GenerateRKENodeCerts, as rke
//    up deploys them (test/upstream/rketree).
// Every leaf upstream signed is renewed; each new one has the old one's subject,
// issuer, SANs, key usage, extended key usage, key type and encoding, chain
// layout and validity rule, a new serial and key, and verifies against upstream's
// CA with openssl; the CAs and the service-account keys stay byte for byte. A
// catalog that forgot a file, or renewed one differently from upstream, fails here.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { opensslPublicKeyOfPrivate, opensslVerify, opensslX509, runCli, type OpensslCert } from '../../src/simulation/harness.js';
import { snapshotTree } from '../../src/simulation/tree.js';
import { upstreamTool } from '../upstream/build.js';

const execFileAsync = promisify(execFile);
let work: string;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-upstream-'));
});

afterAll(async () => {
  if (work) await fs.rm(work, { recursive: true, force: true });
});

interface Tree {
  readonly distribution: 'rke2' | 'rke';
  // Lays out the pristine tree under `root` with the upstream tool.
  make(root: string): Promise<void>;
  readonly roles: string[];
  readonly isCa: (rel: string) => boolean;
  // Files that are neither CAs nor leaves we renew: kept byte for byte.
  readonly keptAlso: (rel: string) => boolean;
  // Leaves upstream signed that a rotation of this node renews, besides the CAs and
  // keptAlso (not the agent's, which rke2 reissues at start; not component-made cert-dir pairs).
  readonly renewable: (rel: string) => boolean;
  readonly keyOf: (crt: string) => string;
  // dynamiclistener: NotAfter = NotBefore + 365 d, exactly; rke: NotBefore = the CA's, NotAfter = now + 10 y.
  readonly validity: 'from-not-before' | 'from-now';
}

const D = 'var/lib/rancher/rke2';
const SSL = 'etc/kubernetes/ssl';
const trees: Tree[] = [
  {
    distribution: 'rke2',
    async make(root) {
      await execFileAsync(await upstreamTool('rke2tree'), ['-root', root, '-node-name', 'server-1', '-node-ip', '127.0.7.1']);
      // What a running server also has beside its certificates, by which the roles are told.
      await fs.mkdir(join(root, D, 'server/db/etcd'), { recursive: true });
      await fs.mkdir(join(root, D, 'agent/pod-manifests'), { recursive: true });
      await fs.writeFile(join(root, D, 'agent/pod-manifests/kube-apiserver.yaml'), 'apiVersion: v1\nkind: Pod\n');
    },
    roles: ['controlplane', 'etcd', 'worker'],
    isCa: (rel) => /(^|\/)(server-ca|client-ca|request-header-ca|peer-ca)\.(crt|key)$/.test(rel),
    keptAlso: (rel) => rel.endsWith('/service.key'),
    renewable: (rel) => rel.startsWith(`${D}/server/tls/`) && rel.endsWith('.crt') && !/\/kube-(controller-manager|scheduler)\//.test(rel),
    keyOf: (crt) => crt.replace(/\.crt$/, '.key'),
    validity: 'from-not-before',
  },
  {
    distribution: 'rke',
    async make(root) {
      await execFileAsync(await upstreamTool('rketree'), ['-root', root, '-address', '127.0.8.1', '-roles', 'etcd,controlplane,worker']);
    },
    roles: ['controlplane', 'etcd', 'worker'],
    isCa: (rel) => /\/(kube-ca|kube-apiserver-requestheader-ca)(-key)?\.pem$/.test(rel),
    keptAlso: (rel) => /\/kube-service-account-token(-key)?\.pem$|\.yaml$/.test(rel),
    renewable: (rel) => rel.startsWith(`${SSL}/`) && rel.endsWith('.pem') && !rel.endsWith('-key.pem'),
    keyOf: (crt) => crt.replace(/\.pem$/, '-key.pem'),
    validity: 'from-now',
  },
];

describe.each(trees)('a $distribution node tree made by upstream code', (tree) => {
  let pristine: string;
  let root: string;
  let leaves: string[];
  let renewed: string[];

  beforeAll(async () => {
    pristine = join(work, `${tree.distribution}-pristine`);
    await tree.make(pristine);
    root = join(work, `${tree.distribution}-node`);
    await fs.cp(pristine, root, { recursive: true });
    const files = [...(await snapshotTree(pristine)).keys()];
    leaves = files.filter((p) => tree.renewable(p) && !tree.isCa(p) && !tree.keptAlso(p)).sort();
    // Every CA certificate upstream made, in one file: openssl finds the one that signed each leaf.
    const cas = files.filter((p) => tree.isCa(p) && !/(-key\.pem|\.key)$/.test(p));
    await fs.writeFile(join(work, `${tree.distribution}-cas.pem`), (await Promise.all(cas.map((p) => fs.readFile(join(pristine, p), 'utf8')))).join(''));
  }, 600_000);

  test('node check reads every file upstream made, all OK, and misses none of its leaves', async () => {
    const run = await runCli(['node', 'check', '--host-root', root, '--distribution', tree.distribution, '-o', 'json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { roles: string[]; certificates: { path: string; status: string }[] };
    expect(report.roles.sort()).toEqual(tree.roles);
    expect(report.certificates.filter((c) => c.status !== 'OK')).toEqual([]);
    const seen = new Set(report.certificates.map((c) => c.path));
    expect(leaves.filter((p) => !seen.has(p))).toEqual([]);
  });

  test('node rotate --all renews every leaf upstream signed', async () => {
    const run = await runCli(['node', 'rotate', '--host-root', root, '--distribution', tree.distribution, '--all', '--no-restart', '-o', 'json']);
    expect(run.stderr).not.toMatch(/PRIVATE KEY/);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as { files: { path: string; status: string; newSerial?: string }[] };
    renewed = result.files.filter((f) => f.status === 'renewed' && f.newSerial).map((f) => f.path).sort();
    expect(leaves.filter((p) => !renewed.includes(p))).toEqual([]);
    expect(renewed.length).toBeGreaterThanOrEqual(7);
  });

  test('each renewed leaf is what upstream made, with a new serial and key, and verifies against upstream CA', async () => {
    const renewedAt = Date.now();
    for (const path of renewed) {
      const [before, after] = [await opensslX509(join(pristine, path)), await opensslX509(join(root, path))];
      const same = (c: OpensslCert) => ({
        path,
        subject: c.subject,
        issuer: c.issuer,
        san: c.san.split(', ').sort(),
        keyUsage: c.keyUsage,
        extKeyUsage: c.extKeyUsage,
        basicConstraints: c.basicConstraints,
        publicKeyAlgorithm: c.publicKeyAlgorithm,
        publicKeySize: c.publicKeySize,
        curve: c.curve,
        // dynamiclistener counts the validity from the NotBefore it set; rke copies the CA's NotBefore.
        ...(tree.validity === 'from-not-before' ? { validitySeconds: (c.notAfter.getTime() - c.notBefore.getTime()) / 1000 } : { notBefore: c.notBefore.toISOString() }),
      });
      expect(same(after)).toEqual(same(before));
      if (tree.validity === 'from-now') {
        // rke: NotAfter = now + 10 years (pki/util.go newSignedCert), so later than upstream's
        // by the time between the two, no more; but never past the CA's own NotAfter (its
        // NotBefore, which the leaf copies, + 10 years: pki/cert/cert.go NewSelfSignedCACert),
        // where rke's leaf outlives its CA by the seconds between making the two.
        const caNotAfter = before.notBefore.getTime() + 3650 * 86_400_000;
        const [low, high] = [Math.min(before.notAfter.getTime(), caNotAfter), before.notAfter.getTime() + (renewedAt - before.notBefore.getTime()) + 60_000];
        expect({ path, notAfterInRange: after.notAfter.getTime() >= low && after.notAfter.getTime() <= Math.min(high, caNotAfter) }).toEqual({ path, notAfterInRange: true });
      }
      expect(after.serial).not.toBe(before.serial);
      // The chain after the leaf, as upstream writes it (RKE2: the signing CA; RKE: none).
      const chain = async (dir: string) => (await fs.readFile(join(dir, path), 'utf8')).split(/(?=-----BEGIN CERTIFICATE-----)/).slice(1);
      expect(await chain(root)).toEqual(await chain(pristine));
      const verified = await opensslVerify(join(work, `${tree.distribution}-cas.pem`), join(root, path));
      expect({ path, ...verified }).toMatchObject({ path, ok: true });
      // A new key in upstream's encoding (RKE2: SEC1 "EC PRIVATE KEY"; RKE: PKCS#1 "RSA PRIVATE KEY") that matches the new certificate.
      const keyPath = tree.keyOf(path);
      const [oldKey, newKey] = [await fs.readFile(join(pristine, keyPath), 'utf8'), await fs.readFile(join(root, keyPath), 'utf8')];
      expect(newKey).not.toBe(oldKey);
      expect(newKey.split('\n')[0]).toBe(oldKey.split('\n')[0]);
      expect(await opensslPublicKeyOfPrivate(join(root, keyPath))).toBe(after.publicKeyPem);
      expect((await fs.stat(join(root, keyPath))).mode & 0o777).toBe(0o600);
    }
  });

  test('the CAs, their keys, the service-account key and the kubeconfigs are byte for byte what upstream made', async () => {
    const [before, after] = [await snapshotTree(pristine), await snapshotTree(root)];
    const kept = [...before.keys()].filter((p) => tree.isCa(p) || tree.keptAlso(p));
    expect(kept.length).toBeGreaterThanOrEqual(5);
    for (const p of kept) expect({ p, ...after.get(p) }).toEqual({ p, ...before.get(p) });
  });
});
