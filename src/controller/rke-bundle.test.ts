import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterCas, rkeNode, type FixtureNode } from '../simulation/fixtures.js';
import { fullClusterStateFromTrees } from '../simulation/rke-state.js';
import { parsePrivateKey, spkiOf } from '../pki/keys.js';
import {
  bundleFromSecretData,
  bundleSecretData,
  entriesInScope,
  issueBundle,
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
const NOW = new Date();

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'rke-bundle-'));
  const etcdIPs = ['127.0.9.1', '127.0.9.2'];
  cp = await rkeNode(join(work, 'cp'), { nodeName: 'cp', nodeIP: '127.0.9.1', roles: ['etcd', 'controlplane'], etcdIPs });
  const cas = await clusterCas(cp);
  etcd = await rkeNode(join(work, 'etcd'), { nodeName: 'etcd', nodeIP: '127.0.9.2', roles: ['etcd'], etcdIPs, cas });
  worker = await rkeNode(join(work, 'w'), { nodeName: 'w', nodeIP: '127.0.9.3', roles: ['worker'], cas });
  stateText = await fullClusterStateFromTrees([cp, etcd, worker]);
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
      expect(p.keyPem).toContain('BEGIN RSA PRIVATE KEY');
      expect(new Date(cert.validFrom).getTime()).toBe(new Date(signer.validFrom).getTime());
      expect(new Date(cert.validTo).getTime() - NOW.getTime()).toBeGreaterThan(3649 * 86400_000);
    }
    // Every node gets the same kube-node: the Secret round trip is lossless.
    const back = bundleFromSecretData(bundleSecretData(issued));
    expect([...back.keys()].sort()).toEqual([...issued.keys()].sort());
    for (const [name, p] of back) expect(p).toEqual({ certPem: issued.get(name)!.certPem, keyPem: issued.get(name)!.keyPem });
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

  test('a bundle Secret with half a pair is refused', () => {
    expect(() => bundleFromSecretData({ 'kube-node.pem': 'eA==' })).toThrow(/no kube-node-key\.pem/);
    expect(() => bundleFromSecretData({ 'kube-node-key.pem': 'eA==' })).toThrow(/has no certificate/);
  });

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
      expect(after[which]!.certificatesBundle!['kube-proxy']!.keyPEM).toBe(issued.get('kube-proxy')!.keyPem);
    }
    expect(stateSerials(updated).get('kube-node')).toBe(issued.get('kube-node')!.serial);
    // Byte identity of the rest: undo the swap on the text and get the original back exactly.
    let undone = updated;
    const old = parseFullState(stateText).currentState!.certificatesBundle!;
    for (const [name, p] of issued) {
      undone = undone.split(JSON.stringify(p.certPem)).join(JSON.stringify(old[name]!.certificatePEM));
      undone = undone.split(JSON.stringify(p.keyPem)).join(JSON.stringify(old[name]!.keyPEM));
    }
    expect(undone).toBe(stateText);
    // Go's escaping of the rest survives (a JSON.stringify round trip would not).
    expect(updated).toContain('\\u003c\\u0026\\u003e');
    // Idempotent: writing the same again changes nothing.
    expect(updateFullState(updated, issued)).toBe(updated);
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
