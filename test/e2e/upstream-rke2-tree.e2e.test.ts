// An RKE2 server's certificates as RKE2 makes them — by rancher/dynamiclistener,
// from a table of k3s's deps.go written by hand (test/upstream/rke2tree) — renewed
// by certrotator, and judged against what upstream made, not against our catalog:
// every leaf upstream signed is renewed; each new one has the old one's subject,
// issuer, SANs, key usage, extended key usage, key type and chain layout, a new
// serial, a key that matches it, and verifies against upstream's CA with openssl;
// the CAs and the service-account key stay byte for byte. A catalog that forgot a
// file, or renewed one differently from upstream, fails here.
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
const D = 'var/lib/rancher/rke2';

let work: string;
let root: string;
let pristine: string;
let upstreamLeaves: string[];

// What upstream's table signed: every leaf .crt except the CAs (and the
// component-made cert-dir pairs, which are not signed by a cluster CA).
const isCa = (rel: string) => /(^|\/)(server-ca|client-ca|request-header-ca|peer-ca)\.crt$/.test(rel);
const isCertDir = (rel: string) => /\/kube-(controller-manager|scheduler)\//.test(rel);

beforeAll(async () => {
  const tool = await upstreamTool('rke2tree');
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-upstream-'));
  pristine = join(work, 'pristine');
  await execFileAsync(tool, ['-root', pristine, '-node-name', 'server-1', '-node-ip', '127.0.7.1']);
  // What a running server also has beside its certificates, by which the roles are told.
  await fs.mkdir(join(pristine, D, 'server/db/etcd'), { recursive: true });
  await fs.mkdir(join(pristine, D, 'agent/pod-manifests'), { recursive: true });
  await fs.writeFile(join(pristine, D, 'agent/pod-manifests/kube-apiserver.yaml'), 'apiVersion: v1\nkind: Pod\n');
  root = join(work, 'node');
  await fs.cp(pristine, root, { recursive: true });
  upstreamLeaves = [...(await snapshotTree(pristine)).keys()].filter((p) => p.endsWith('.crt') && !isCa(p) && !isCertDir(p) && !p.startsWith(`${D}/agent/`)).sort();
}, 600_000);

afterAll(async () => {
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('an RKE2 server tree made by upstream code (dynamiclistener)', () => {
  let result: { files: { path: string; status: string; oldSerial?: string; newSerial?: string }[] };

  test('node check reads every file upstream made, all OK, and misses none of its leaves', async () => {
    const run = await runCli(['node', 'check', '--host-root', root, '--distribution', 'rke2', '-o', 'json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { roles: string[]; certificates: { path: string; status: string }[] };
    expect(report.roles.sort()).toEqual(['controlplane', 'etcd', 'worker']);
    expect(report.certificates.filter((c) => c.status !== 'OK')).toEqual([]);
    const seen = new Set(report.certificates.map((c) => c.path));
    expect(upstreamLeaves.filter((p) => !seen.has(p))).toEqual([]);
  });

  test('node rotate --all renews every leaf upstream signed on the server', async () => {
    const run = await runCli(['node', 'rotate', '--host-root', root, '--distribution', 'rke2', '--all', '--no-restart', '-o', 'json']);
    expect(run.stderr).not.toMatch(/PRIVATE KEY/);
    expect(run.code).toBe(0);
    result = JSON.parse(run.stdout);
    const renewed = result.files.filter((f) => f.status === 'renewed' && f.newSerial).map((f) => f.path).sort();
    expect(upstreamLeaves.filter((p) => p.startsWith(`${D}/server/`) && !renewed.includes(p))).toEqual([]);
  });

  test('each renewed leaf is what upstream made, with a new serial and key, and verifies against upstream CA', async () => {
    const renewed = result.files.filter((f) => f.status === 'renewed' && f.newSerial);
    expect(renewed.length).toBeGreaterThanOrEqual(13);
    for (const f of renewed) {
      const [before, after] = [await opensslX509(join(pristine, f.path)), await opensslX509(join(root, f.path))];
      const same = (c: OpensslCert) => ({
        path: f.path,
        subject: c.subject,
        issuer: c.issuer,
        san: c.san.split(', ').sort(),
        keyUsage: c.keyUsage,
        extKeyUsage: c.extKeyUsage,
        basicConstraints: c.basicConstraints,
        publicKeyAlgorithm: c.publicKeyAlgorithm,
        curve: c.curve,
        // To the second: dynamiclistener counts it from the NotBefore it set.
        validitySeconds: (c.notAfter.getTime() - c.notBefore.getTime()) / 1000,
      });
      expect(same(after)).toEqual(same(before));
      expect(after.serial).not.toBe(before.serial);
      // The chain after the leaf, as upstream writes it: the CA that signed it.
      const chain = async (dir: string) => (await fs.readFile(join(dir, f.path), 'utf8')).split(/(?=-----BEGIN CERTIFICATE-----)/).slice(1);
      expect(await chain(root)).toEqual(await chain(pristine));
      const ca = (await chain(pristine))[0]!;
      await fs.writeFile(join(work, 'ca.pem'), ca);
      const verified = await opensslVerify(join(work, 'ca.pem'), join(root, f.path));
      expect({ path: f.path, ...verified }).toMatchObject({ path: f.path, ok: true });
      // A new key, in upstream's encoding (SEC1 "EC PRIVATE KEY"), matching the new certificate.
      const keyPath = f.path.replace(/\.crt$/, '.key');
      const [oldKey, newKey] = [await fs.readFile(join(pristine, keyPath), 'utf8'), await fs.readFile(join(root, keyPath), 'utf8')];
      expect(newKey).not.toBe(oldKey);
      expect(newKey.split('\n')[0]).toBe(oldKey.split('\n')[0]);
      expect(await opensslPublicKeyOfPrivate(join(root, keyPath))).toBe(after.publicKeyPem);
      expect((await fs.stat(join(root, keyPath))).mode & 0o777).toBe(0o600);
    }
  });

  test('the CAs, their keys and the service-account key are byte for byte what upstream made', async () => {
    const [before, after] = [await snapshotTree(pristine), await snapshotTree(root)];
    const kept = [...before.keys()].filter((p) => isCa(p) || isCa(p.replace(/\.key$/, '.crt')) || p.endsWith('/service.key'));
    expect(kept.length).toBe(2 * 5 + 2 + 1); // five CAs with keys, the agent's two CA copies, service.key
    for (const p of kept) expect({ p, ...after.get(p) }).toEqual({ p, ...before.get(p) });
  });
});
