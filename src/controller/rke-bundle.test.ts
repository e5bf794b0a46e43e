import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addExternalEtcdClient, clusterCas, rkeNode, type FixtureNode } from '../simulation/fixtures.js';
import { fullClusterStateFromTrees } from '../simulation/rke-state.js';
import { parsePrivateKey, spkiOf } from '../pki/keys.js';
import type { NodeRole } from '../distributions/types.js';
import {
  bundleFromSecretData,
  bundleSealingSecret,
  bundleSecretData,
  entriesForRoles,
  entriesInScope,
  issueBundle,
  issueStateOnly,
  parseFullState,
  RkeStateError,
  stateHolds,
  stateSerials,
  updateFullState,
} from './rke-bundle.js';

let work: string;
let cp: FixtureNode;
let etcd: FixtureNode;
let worker: FixtureNode;
let stateText: string;
// A cluster with external etcd (services.etcd.external_urls): no etcd host, and
// kube-etcd-client / kube-etcd-client-ca (no key) in the state from cluster.yml.
let externalEtcdState: string;
const NOW = new Date();

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'rke-bundle-'));
  const etcdIPs = ['127.0.9.1', '127.0.9.2'];
  cp = await rkeNode(join(work, 'cp'), { nodeName: 'cp', nodeIP: '127.0.9.1', roles: ['etcd', 'controlplane'], etcdIPs });
  const cas = await clusterCas(cp);
  etcd = await rkeNode(join(work, 'etcd'), { nodeName: 'etcd', nodeIP: '127.0.9.2', roles: ['etcd'], etcdIPs, cas });
  worker = await rkeNode(join(work, 'w'), { nodeName: 'w', nodeIP: '127.0.9.3', roles: ['worker'], cas });
  stateText = await fullClusterStateFromTrees([cp, etcd, worker]);
  const extCp = await rkeNode(join(work, 'ext-cp'), { nodeName: 'ext-cp', nodeIP: '127.0.9.11', roles: ['controlplane'] });
  await addExternalEtcdClient(extCp);
  const extWorker = await rkeNode(join(work, 'ext-w'), { nodeName: 'ext-w', nodeIP: '127.0.9.12', roles: ['worker'], cas: await clusterCas(extCp) });
  externalEtcdState = await fullClusterStateFromTrees([extCp, extWorker]);
}, 60_000);

afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

const caPem = () => parseFullState(stateText).currentState!.certificatesBundle!['kube-ca']!.certificatePEM!;

describe('entriesInScope', () => {
  test('kubelet: kube-node only (no kube-kubelet-* without generate_serving_certificate); etcd: every kube-etcd-<ip>', () => {
    const s = parseFullState(stateText);
    expect(entriesInScope(s, ['kubelet']).map((e) => e.name)).toEqual(['kube-node']);
    expect(entriesInScope(s, ['etcd']).map((e) => e.name)).toEqual(['kube-etcd-127-0-9-1', 'kube-etcd-127-0-9-2']);
  });
  test('All: every leaf, the proxy client (requestheader CA) included, never a CA', () => {
    const all = entriesInScope(parseFullState(stateText), 'All');
    expect(all.map((e) => e.name)).toEqual([
      'kube-apiserver',
      'kube-apiserver-proxy-client',
      'kube-controller-manager',
      'kube-etcd-127-0-9-1',
      'kube-etcd-127-0-9-2',
      'kube-node',
      'kube-proxy',
      'kube-scheduler',
    ]);
    expect(all.find((e) => e.name === 'kube-apiserver-proxy-client')!.caName).toBe('kube-apiserver-requestheader-ca');
  });
});

describe('issueBundle', () => {
  test('issues each shared certificate once: one serial per entry, signed by kube-ca, same subject and SANs, new RSA-2048 key, RKE validity', async () => {
    const issued = await issueBundle(stateText, 'All', NOW);
    const ca = new X509Certificate(caPem());
    const old = parseFullState(stateText).currentState!.certificatesBundle!;
    for (const [name, p] of issued) {
      const cert = new X509Certificate(p.certPem);
      const before = new X509Certificate(old[name]!.certificatePEM!);
      const signer = name === 'kube-apiserver-proxy-client' ? new X509Certificate(old['kube-apiserver-requestheader-ca']!.certificatePEM!) : ca;
      expect([name, cert.verify(signer.publicKey)]).toEqual([name, true]);
      expect(cert.subject).toBe(before.subject);
      expect(cert.subjectAltName).toBe(before.subjectAltName);
      expect(cert.serialNumber).not.toBe(before.serialNumber);
      expect(spkiOf(parsePrivateKey(p.keyPem, name).keyObject)).toEqual(spkiOf(cert.publicKey));
      expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
      expect(p.keyPem.startsWith('-----BEGIN RSA PRIVATE KEY-----')).toBe(true);
      expect(new Date(cert.validFrom).getTime()).toBe(new Date(signer.validFrom).getTime());
      // Ten years from now, as RKE gives, but never past kube-ca (also ten years, made earlier): clamped to it.
      expect(new Date(cert.validTo).getTime()).toBe(Math.min(Math.floor(NOW.getTime() / 1000) * 1000 + 3650 * 86400_000, new Date(signer.validTo).getTime()));
    }
    // Every node gets the same kube-node: the Secret round trip is lossless.
    const back = bundleFromSecretData(bundleSecretData(issued, bundleSealingSecret(stateText), 'run-1'), bundleSealingSecret(stateText), 'run-1');
    expect([...back.keys()].sort()).toEqual([...issued.keys()].sort());
    for (const [name, p] of back) expect([name, p.certPem === issued.get(name)!.certPem, p.keyPem === issued.get(name)!.keyPem]).toEqual([name, true, true]);
    expect(new Set([...issued.values()].map((p) => p.serial)).size).toBe(issued.size);
  }, 30_000);

  test('refuses a state without the CA key, and a service that has no entry', async () => {
    const s = parseFullState(stateText);
    s.currentState!.certificatesBundle!['kube-ca']!.keyPEM = '';
    s.desiredState!.certificatesBundle!['kube-ca']!.keyPEM = '';
    await expect(issueBundle(JSON.stringify(s), ['kube-proxy'], NOW)).rejects.toThrow(/kube-ca has no certificatePEM\/keyPEM/);
    delete s.currentState!.certificatesBundle!['kube-proxy'];
    delete s.desiredState!.certificatesBundle!['kube-proxy'];
    await expect(issueBundle(JSON.stringify(s), ['kube-proxy'], NOW)).rejects.toThrow(RkeStateError);
  });

  test("the bundle Secret holds ciphertext only, and opens only with kube-ca's key for its own run", async () => {
    const issued = await issueBundle(stateText, ['kube-proxy'], NOW);
    const secret = bundleSealingSecret(stateText);
    const data = bundleSecretData(issued, secret, 'run-1');
    expect(Object.keys(data).sort()).toEqual(['ciphertext', 'nonce']);
    expect(Object.values(data).map((v) => Buffer.from(v, 'base64').toString('latin1')).join('')).not.toMatch(/PRIVATE KEY|CERTIFICATE/);
    expect(() => bundleFromSecretData(data, secret, 'run-2')).toThrow(/does not open with kube-ca's key for run run-2/);
    const otherCa = bundleSealingSecret(externalEtcdState);
    expect(() => bundleFromSecretData(data, otherCa, 'run-1')).toThrow(RkeStateError);
    const flipped = Buffer.from(data.ciphertext!, 'base64');
    flipped[0] ^= 1;
    expect(() => bundleFromSecretData({ ...data, ciphertext: flipped.toString('base64') }, secret, 'run-1')).toThrow(/does not open/);
    expect(() => bundleFromSecretData({ 'kube-node.pem': 'eA==' }, secret, 'run-1')).toThrow(/no nonce\/ciphertext/);
  });

  test.each<[string, string[], string[]]>([
    ['a worker', ['worker'], ['kube-node', 'kube-proxy']],
    ['an etcd node: every kube-etcd-<ip>', ['etcd'], ['kube-etcd-127-0-9-1', 'kube-etcd-127-0-9-2', 'kube-node', 'kube-proxy']],
    ['a control-plane node', ['controlplane'], ['kube-apiserver', 'kube-apiserver-proxy-client', 'kube-controller-manager', 'kube-node', 'kube-proxy', 'kube-scheduler']],
  ])('entriesForRoles: %s gets what RKE deploys to it', (_what, roles, expected) => {
    // The names a scope-All bundle holds: the state's entries in scope (issuing them would only cost RSA key generation).
    const names = entriesInScope(parseFullState(stateText), 'All').map((e) => e.name);
    expect(entriesForRoles(names, roles as NodeRole[])).toEqual(expected);
  });

});

describe('external etcd (cluster.yml services.etcd): kube-etcd-client and kube-etcd-client-ca are never issued', () => {
  const HOST_ISSUED = ['kube-apiserver', 'kube-apiserver-proxy-client', 'kube-controller-manager', 'kube-node', 'kube-proxy', 'kube-scheduler'];

  test('the state holds them as RKE writes them: the client pair, and the CA certificate without a key', () => {
    const b = parseFullState(externalEtcdState).currentState!.certificatesBundle!;
    expect(b['kube-etcd-client']!.keyPEM!.includes('PRIVATE KEY')).toBe(true);
    expect(b['kube-etcd-client-ca']!.keyPEM === '').toBe(true);
  });

  test.each<[string, 'All' | string[], string[]]>([
    ['All: everything RKE issued, not the external etcd client material', 'All', HOST_ISSUED],
    ['etcd: nothing (the cluster has no kube-etcd-<ip>)', ['etcd'], []],
  ])('entriesInScope %s', (_what, scope, names) => {
    expect(entriesInScope(parseFullState(externalEtcdState), scope).map((e) => e.name)).toEqual(names);
  });

  test('scope All issues every other certificate normally', async () => {
    const issued = await issueBundle(externalEtcdState, 'All', NOW);
    expect([...issued.keys()].sort()).toEqual(HOST_ISSUED);
    const ca = new X509Certificate(parseFullState(externalEtcdState).currentState!.certificatesBundle!['kube-ca']!.certificatePEM!);
    expect(new X509Certificate(issued.get('kube-node')!.certPem).verify(ca.publicKey)).toBe(true);
  }, 30_000);

  test('service etcd has nothing to issue and says why: external etcd, certificates from cluster.yml services.etcd, not rotated by RKE either', async () => {
    const err = (await issueBundle(externalEtcdState, ['etcd'], NOW).then(() => undefined, (e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(RkeStateError);
    expect(err.message).toMatch(/uses external etcd/);
    expect(err.message).toMatch(/kube-etcd-client from cluster\.yml services\.etcd\.cert\/key, kube-etcd-client-ca from cluster\.yml services\.etcd\.ca_cert/);
    expect(err.message).toMatch(/not rotated by RKE either/);
    expect(err.message).not.toContain('PRIVATE KEY');
  });
});

describe('kube-admin: on no host, renewed in the state by scope All only', () => {
  const admin = (text: string, which: 'desiredState' | 'currentState' = 'currentState') => parseFullState(text)[which]!.certificatesBundle!['kube-admin']!;

  test('issueStateOnly(All): kube-admin, signed by kube-ca, same subject (O=system:masters, CN=kube-admin), clientAuth only, new RSA-2048 PKCS#1 key, RKE validity', async () => {
    const issued = await issueStateOnly(stateText, 'All', NOW);
    expect([...issued.keys()]).toEqual(['kube-admin']);
    const p = issued.get('kube-admin')!;
    const cert = new X509Certificate(p.certPem);
    const before = new X509Certificate(admin(stateText).certificatePEM!);
    const ca = new X509Certificate(caPem());
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toBe(before.subject);
    expect(cert.subject).toBe('O=system:masters\nCN=kube-admin');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(cert.serialNumber).not.toBe(before.serialNumber);
    expect(spkiOf(parsePrivateKey(p.keyPem, 'kube-admin').keyObject)).toEqual(spkiOf(cert.publicKey));
    expect(spkiOf(cert.publicKey)).not.toEqual(spkiOf(before.publicKey));
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(p.keyPem.startsWith('-----BEGIN RSA PRIVATE KEY-----')).toBe(true);
    expect(new Date(cert.validFrom).getTime()).toBe(new Date(ca.validFrom).getTime());
    expect(new Date(cert.validTo).getTime()).toBe(Math.min(Math.floor(NOW.getTime() / 1000) * 1000 + 3650 * 86400_000, new Date(ca.validTo).getTime()));
  }, 30_000);

  test.each<[string, 'All' | string[]]>([
    ['a Service scope', ['kube-apiserver']],
    ['service etcd', ['etcd']],
  ])('issueStateOnly for %s issues nothing', async (_what, scope) => {
    expect((await issueStateOnly(stateText, scope, NOW)).size).toBe(0);
  });

  test('never in the bundle: issueBundle(All) leaves kube-admin out', async () => {
    expect([...(await issueBundle(stateText, 'All', NOW)).keys()]).not.toContain('kube-admin');
  }, 30_000);

  test('updateFullState writes it in both states, and its embedded kubeconfig takes the new pair (the old key leaves the state)', async () => {
    const issued = await issueStateOnly(stateText, 'All', NOW);
    const p = issued.get('kube-admin')!;
    const old = admin(stateText);
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    expect(String(old.config).includes(`client-key-data: ${b64(old.keyPEM!)}`)).toBe(true);
    const updated = updateFullState(stateText, issued);
    // Booleans, not toContain: a failure must not print key material.
    for (const which of ['desiredState', 'currentState'] as const) {
      const e = admin(updated, which);
      expect({
        which,
        certificatePEM: e.certificatePEM === p.certPem,
        keyPEM: e.keyPEM === p.keyPem,
        configCert: String(e.config).includes(`client-certificate-data: ${b64(p.certPem)}\n`),
        configKey: String(e.config).includes(`client-key-data: ${b64(p.keyPem)}`),
        configCa: String(e.config).includes(`certificate-authority-data: ${b64(caPem())}\n`),
      }).toEqual({ which, certificatePEM: true, keyPEM: true, configCert: true, configKey: true, configCa: true });
    }
    expect({ oldKeyInConfig: updated.includes(b64(old.keyPEM!)), oldKeyPem: updated.includes(JSON.stringify(old.keyPEM)) }).toEqual({ oldKeyInConfig: false, oldKeyPem: false });
    expect(stateHolds(updated, issued)).toBe(true);
  }, 30_000);
});

describe('updateFullState', () => {
  test('replaces certificatePEM/keyPEM of the issued entries in desiredState AND currentState; every other byte identical', async () => {
    const issued = await issueBundle(stateText, ['kubelet', 'kube-proxy'], NOW);
    const updated = updateFullState(stateText, issued);
    expect(stateHolds(stateText, issued)).toBe(false);
    expect(stateHolds(updated, issued)).toBe(true);
    const after = parseFullState(updated);
    for (const which of ['desiredState', 'currentState'] as const) {
      expect(after[which]!.certificatesBundle!['kube-node']!.certificatePEM).toBe(issued.get('kube-node')!.certPem);
      expect(after[which]!.certificatesBundle!['kube-proxy']!.keyPEM === issued.get('kube-proxy')!.keyPem).toBe(true);
    }
    expect(stateSerials(updated).get('kube-node')).toBe(issued.get('kube-node')!.serial);
    // Byte identity of the rest: undo the swap on the text and get the original back exactly.
    let undone = updated;
    const old = parseFullState(stateText).currentState!.certificatesBundle!;
    for (const [name, p] of issued) {
      undone = undone.split(JSON.stringify(p.certPem)).join(JSON.stringify(old[name]!.certificatePEM));
      undone = undone.split(JSON.stringify(p.keyPem)).join(JSON.stringify(old[name]!.keyPEM));
    }
    expect(undone === stateText).toBe(true); // a diff would print keys
    // Go's escaping of the rest survives (a JSON.stringify round trip would not).
    expect(updated).toContain('\\u003c\\u0026\\u003e');
    // Idempotent: writing the same again changes nothing.
    expect(updateFullState(updated, issued) === updated).toBe(true);
  }, 30_000);

  test('only desiredState holding an entry is fine; an entry missing from both is refused', async () => {
    const issued = await issueBundle(stateText, ['kube-scheduler'], NOW);
    const s = parseFullState(stateText);
    delete s.currentState!.certificatesBundle!['kube-scheduler'];
    const updated = parseFullState(updateFullState(JSON.stringify(s), issued));
    expect(updated.desiredState!.certificatesBundle!['kube-scheduler']!.certificatePEM).toBe(issued.get('kube-scheduler')!.certPem);
    expect(updated.currentState!.certificatesBundle!['kube-scheduler']).toBeUndefined();
    delete s.desiredState!.certificatesBundle!['kube-scheduler'];
    expect(() => updateFullState(JSON.stringify(s), issued)).toThrow(/no entry kube-scheduler/);
  }, 30_000);

  test('an entry encoded differently than expected is refused rather than rewritten', async () => {
    const issued = await issueBundle(stateText, ['kube-proxy'], NOW);
    // The PEM's newlines written as \u000a: a literal match is impossible.
    const odd = stateText.replace(/"certificatePEM":"(-----BEGIN CERTIFICATE-----)\\n/g, '"certificatePEM":"$1\\u000a');
    expect(() => updateFullState(odd, issued)).toThrow(/could not be updated in place/);
  }, 30_000);
});
