// An RKE run through the reconcile loop with the in-memory fake API server and
// a fake cluster state: the certificates are issued once into one bundle that
// every NodeRotation names, the state is written only after every node is
// Rotated (and before the run says Succeeded), and a failed run leaves the
// state byte for byte as it was and takes the bundle away.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CertificateRotation } from '../api/certificaterotation.js';
import type { NodeRotationStatus, NodeRotation, SealedBundle } from '../api/noderotation.js';
import { ConflictError, isConflict } from '../kube/client.js';
import { rkeNode as rkeTree } from '../simulation/fixtures.js';
import { fullClusterStateFromTrees } from '../simulation/rke-state.js';
import { X509Certificate } from 'node:crypto';
import { CrashError, FakeCluster } from './fake-cluster.js';
import { EVENT_REASONS } from './event-reasons.js';
import { reconcileRotation } from './reconcile-rotation.js';
import { newSealingKeyPair, type SealingKeyPair } from '../pki/seal.js';
import { bundleFromSecretData, bundleSealingSecret, openForNode, parseFullState, stateSerials } from './rke-bundle.js';
import type { RkeClusterAccess, RkeStateHandle } from './rke-run.js';
import { rkeNode, runPhases } from './testing.js';

let work: string;
let initialState: string;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'rke-run-'));
  const cp = await rkeTree(join(work, 'cp'), { nodeName: 'cp1', nodeIP: '127.0.7.1', roles: ['etcd', 'controlplane'] });
  initialState = await fullClusterStateFromTrees([cp]);
}, 60_000);
afterAll(() => fs.rm(work, { recursive: true, force: true }));

class FakeRke implements RkeClusterAccess {
  readonly bundleNamespace = 'certrotator-system';
  state = initialState;
  stateRV = 1;
  readonly bundles = new Map<string, { data: Record<string, string>; runId: string }>();
  /** The data keys of every bundle created: what any node's agent could read. */
  readonly bundleKeys: string[][] = [];
  lastBundle: Record<string, string> | undefined;
  readonly ops: string[] = [];
  /** Called at each state write, to check what was true then. */
  onStateWrite: () => void = () => {};
  failNext: { op: string; error: Error } | undefined;

  private op(what: string): void {
    if (this.failNext && what.startsWith(this.failNext.op)) {
      const e = this.failNext.error;
      this.failNext = undefined;
      throw e;
    }
    this.ops.push(what);
  }
  async readState(): Promise<RkeStateHandle | undefined> {
    const rv = this.stateRV;
    return {
      kind: 'Secret' as const,
      text: this.state,
      replace: async (text: string) => {
        if (rv !== this.stateRV) throw new ConflictError('secrets', 'full-cluster-state', String(rv));
        this.op('replace-state');
        this.onStateWrite();
        this.state = text;
        this.stateRV++;
      },
    };
  }
  async getBundle(name: string) {
    return this.bundles.get(name);
  }
  async createBundle(name: string, data: Record<string, string>, runId: string, owner: CertificateRotation) {
    this.op(`create-bundle ${name} owner=${owner.metadata.name} run=${runId}`);
    this.bundleKeys.push(Object.keys(data).sort());
    this.lastBundle = data;
    if (!this.bundles.has(name)) this.bundles.set(name, { data, runId });
  }
  async deleteBundle(name: string) {
    this.op(`delete-bundle ${name}`);
    this.bundles.delete(name);
  }
}

const NODES = [rkeNode('e1', { etcd: true }), rkeNode('c1', { cp: true }), rkeNode('w1', { worker: true }), rkeNode('w2', { worker: true })];
// The state's CAs are made now (src/simulation), and a CA signs nothing before its
// NotBefore: the fake cluster's clock starts now too, not at its fixed date.
const clusterAfterTheCas = (): FakeCluster => {
  const fake = new FakeCluster(NODES);
  fake.clock = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000);
  return fake;
};
const FINISHED = new Date(Date.now() + 2000).toISOString();


type Agent = (nr: NodeRotation, rke: FakeRke) => Partial<NodeRotationStatus> | undefined;

/** Every box the controller sealed, by NodeRotation name (the last one; they are cleared when the run ends). */
function recordSeals(fake: FakeCluster): Map<string, SealedBundle> {
  const seen = new Map<string, SealedBundle>();
  const set = fake.setSealedBundle.bind(fake);
  fake.setSealedBundle = async (name, sealed) => {
    if (sealed) seen.set(name, sealed);
    await set(name, sealed);
  };
  return seen;
}

// Each node's agent key, by NodeRotation: made once, as an agent process does for its run.
const agentKeys = new Map<string, SealingKeyPair>();
const agentKey = (nr: NodeRotation): SealingKeyPair => {
  const k = agentKeys.get(nr.metadata.name!) ?? newSealingKeyPair();
  agentKeys.set(nr.metadata.name!, k);
  return k;
};

/**
 * An agent as the real one behaves: on its instruction it reports Updating
 * with its sealing key; once the controller has sealed its certificates to
 * that key it opens them, "installs" them and reports their serials.
 */
const installing: Agent = (nr) => {
  const key = agentKey(nr);
  if (nr.status?.phase === 'Pending') return { phase: 'Updating', step: 'BackingUp', sealingKey: key.publicKey };
  const box = nr.sealedBundle;
  if (!box || box.recipientKey !== key.publicKey) return undefined;
  const pairs = openForNode(box, key, nr.spec.runID, nr.spec.nodeName);
  const files = [...pairs].map(([name, p]) => ({
    service: 'x',
    path: `/etc/kubernetes/ssl/${name}.pem`,
    newSerial: stateSerials(JSON.stringify({ currentState: { certificatesBundle: { [name]: { certificatePEM: p.certPem } } } })).get(name)!,
  }));
  return { phase: 'Rotated', step: 'Done', finishedAt: FINISHED, files };
};

async function drive(fake: FakeCluster, rke: FakeRke, name: string, agent: Agent = installing): Promise<void> {
  for (let pass = 0; pass < 100; pass++) {
    const before = fake.writes.length + rke.ops.length;
    let acted = false;
    let retry = false;
    try {
      await reconcileRotation({ ...fake.deps(), rke }, name);
    } catch (err) {
      if (!(err instanceof CrashError) && !isConflict(err)) throw err;
      retry = true;
    }
    for (const nr of fake.nodeRotationsByName.values()) {
      if (nr.status?.phase !== 'Pending' && nr.status?.phase !== 'Updating') continue;
      const report = agent(nr, rke);
      if (report) {
        fake.report(nr.metadata.name!, report);
        acted = true;
      }
    }
    if (!acted && !retry && fake.writes.length + rke.ops.length === before) return;
  }
  throw new Error('did not settle');
}

/** What the run's bundle Secret holds, opened as the controller opens it (with kube-ca's key from the state). */
const openedBundle = (rke: FakeRke, runId: string) => bundleFromSecretData(rke.bundles.get('certrotator-rke-bundle')?.data ?? rke.lastBundle!, bundleSealingSecret(initialState), runId);

const adminOf = (text: string, which: 'desiredState' | 'currentState') => parseFullState(text)[which]!.certificatesBundle!['kube-admin']!;
const adminEvents = (fake: FakeCluster) => fake.events.filter((e) => e.reason === EVENT_REASONS.rkeKubeAdminRenewed);

/** Everything the controller logged, as text, to check no key material is in it. */
function capturingLog(into: string[]) {
  const rec = (level: string) => (fields: unknown, msg?: string) => into.push(`${level} ${JSON.stringify(fields)} ${msg ?? ''}`);
  return { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') };
}

describe('an RKE run with a controller-issued bundle', () => {
  it('issues once, every node gets the same bundle, the state is written after the last node and before Succeeded, then the bundle goes', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    fake.apply('kubelet', { scope: 'Service', service: 'kubelet', strategy: { maxUnavailable: 2 } });
    rke.onStateWrite = () => {
      // Every node has reported Rotated; the run is not yet written Succeeded.
      expect([...fake.nodeRotationsByName.values()].map((nr) => nr.status?.phase)).toEqual(['Rotated', 'Rotated', 'Rotated', 'Rotated']);
      expect(fake.rotation('kubelet')!.status!.phase).toBe('Progressing');
    };
    await drive(fake, rke, 'kubelet');
    expect(fake.rotation('kubelet')!.status!.phase).toBe('Succeeded');
    const bundle = 'certrotator-rke-bundle';
    expect(rke.ops).toEqual([`create-bundle ${bundle} owner=kubelet run=uid-kubelet-g1`, 'replace-state', `delete-bundle ${bundle}`]);
    const refs = [...fake.nodeRotationsByName.values()].map((nr) => nr.spec.bundleSecretRef);
    expect(refs).toEqual(Array(4).fill({ namespace: 'certrotator-system', name: bundle }));
    // The state holds what every node reported for kube-node: one serial.
    const reported = new Set([...fake.nodeRotationsByName.values()].flatMap((nr) => nr.status!.files!.map((f) => f.newSerial)));
    expect(reported.size).toBe(1);
    expect(stateSerials(rke.state).get('kube-node')).toBe([...reported][0]);
    expect(stateSerials(rke.state).get('kube-node')).not.toBe(stateSerials(initialState).get('kube-node'));
    // Nothing else in the state changed.
    expect(stateSerials(rke.state).get('kube-apiserver')).toBe(stateSerials(initialState).get('kube-apiserver'));
    // Re-reconciling the finished run does nothing more.
    const ops = rke.ops.length;
    await reconcileRotation({ ...fake.deps(), rke }, 'kubelet');
    expect(rke.ops).toHaveLength(ops);
    // A Service scope never touches kube-admin (rke cert rotate --service never regenerates it).
    expect(stateSerials(rke.state).get('kube-admin')).toBe(stateSerials(initialState).get('kube-admin'));
    expect(adminEvents(fake)).toEqual([]);
    // ... but the admin's local cluster.rkestate is stale all the same, and the user is told once.
    const stateEvents = fake.events.filter((e) => e.reason === EVENT_REASONS.rkeStateUpdated);
    expect(stateEvents).toHaveLength(1);
    expect(stateEvents[0]!.message).toMatch(/kube-node.*local cluster\.rkestate is stale.*`rke util get-state-file` before the next `rke up`/);
  }, 60_000);

  it("each node is sealed only what RKE deploys to its roles, to its own agent's key; nothing in the cluster holds a key in clear", async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    fake.apply('every', { strategy: { maxUnavailable: 2 } });
    const boxes = recordSeals(fake);
    await drive(fake, rke, 'every');
    expect(fake.rotation('every')!.status!.phase).toBe('Succeeded');
    const nrs = [...fake.nodeRotationsByName.values()];
    // The run is over: no box is left in any NodeRotation.
    expect(nrs.filter((nr) => nr.sealedBundle).map((nr) => nr.spec.nodeName)).toEqual([]);
    const boxOf = (nr: NodeRotation) => boxes.get(nr.metadata.name!)!;
    const byNode = Object.fromEntries(nrs.map((nr) => [nr.spec.nodeName, boxOf(nr).entries]));
    // pki/util.go getCertKeys: kube-node and kube-proxy everywhere, kube-etcd-<ip> on etcd nodes, the control-plane pairs on control-plane nodes.
    expect(byNode).toEqual({
      e1: ['kube-etcd-127-0-7-1', 'kube-node', 'kube-proxy'],
      c1: ['kube-apiserver', 'kube-apiserver-proxy-client', 'kube-controller-manager', 'kube-node', 'kube-proxy', 'kube-scheduler'],
      w1: ['kube-node', 'kube-proxy'],
      w2: ['kube-node', 'kube-proxy'],
    });
    const [w1, w2, c1] = ['w1', 'w2', 'c1'].map((n) => nrs.find((nr) => nr.spec.nodeName === n)!);
    // A worker's box opens with its own agent's key only, and only as its own.
    expect(() => openForNode(boxOf(c1!), agentKey(w1!), c1!.spec.runID, 'c1')).toThrow(/sealed to another key/);
    expect(() => openForNode({ ...boxOf(c1!), recipientKey: agentKey(w1!).publicKey }, agentKey(w1!), c1!.spec.runID, 'c1')).toThrow(/does not open/);
    expect(() => openForNode(boxOf(w2!), agentKey(w2!), w2!.spec.runID, 'w1')).toThrow(/does not open for/);
    expect([...openForNode(boxOf(w1!), agentKey(w1!), w1!.spec.runID, 'w1').keys()]).toEqual(['kube-node', 'kube-proxy']);
    // The bundle Secret: ciphertext only; the NodeRotations: sealed boxes and public keys only.
    expect(rke.bundleKeys).toEqual([['ciphertext', 'nonce']]);
    const inCluster = JSON.stringify([rke.lastBundle, Object.values(rke.lastBundle!).map((v) => Buffer.from(v, 'base64').toString('latin1')), [...boxes.values()], fake.rotation('every')]);
    expect(inCluster).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE|LS0tLS1CRUdJTi/);
  }, 60_000);

  it('an agent that restarts mid-wait publishes a new key and is sealed to again; the box for the old key is replaced', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    fake.apply('restart', { scope: 'Service', service: 'kube-proxy' });
    const boxes = recordSeals(fake);
    const keysOfW1: string[] = [];
    await drive(fake, rke, 'restart', (nr, r) => {
      if (nr.spec.nodeName === 'w1' && nr.sealedBundle && keysOfW1.length === 0) {
        keysOfW1.push(nr.sealedBundle.recipientKey);
        const fresh = newSealingKeyPair();
        agentKeys.set(nr.metadata.name!, fresh);
        return { sealingKey: fresh.publicKey };
      }
      return installing(nr, r);
    });
    expect(fake.rotation('restart')!.status!.phase).toBe('Succeeded');
    const w1 = [...fake.nodeRotationsByName.values()].find((nr) => nr.spec.nodeName === 'w1')!;
    expect(boxes.get(w1.metadata.name!)!.recipientKey).toBe(agentKey(w1).publicKey);
    expect(boxes.get(w1.metadata.name!)!.recipientKey).not.toBe(keysOfW1[0]);
    // Sealed twice (the old key, then the new one), and the box removed when the run ended.
    expect(fake.writes.filter((w) => w === `patch noderotations/${w1.metadata.name}`)).toHaveLength(3);
    expect(w1.sealedBundle).toBeUndefined();
  }, 60_000);

  it('a node the run gave up on (nodeTimeout) is never sealed to, even if its agent publishes a key afterwards', async () => {
    const fake = new FakeCluster([...NODES, rkeNode('w3', { worker: true })]);
    fake.clock = clusterAfterTheCas().clock;
    const rke = new FakeRke();
    fake.apply('late', { scope: 'Service', service: 'kube-proxy', strategy: { maxUnavailable: 2, nodeTimeout: '1m' } });
    const byNode = (node: string) => [...fake.nodeRotationsByName.values()].find((nr) => nr.spec.nodeName === node);
    // w1 and w3 are slow (Updating, no key yet); everyone else installs.
    const slow = new Set(['w1', 'w3']);
    const pass = async () => {
      await reconcileRotation({ ...fake.deps(), rke }, 'late');
      for (const nr of fake.nodeRotationsByName.values()) {
        if (slow.has(nr.spec.nodeName)) {
          if (nr.status?.phase === 'Pending') fake.report(nr.metadata.name!, { phase: 'Updating', step: 'BackingUp' });
        } else if (nr.status?.phase === 'Pending' || nr.status?.phase === 'Updating') {
          const report = installing(nr, rke);
          if (report) fake.report(nr.metadata.name!, report);
        }
      }
    };
    for (let i = 0; i < 12 && !byNode('w1'); i++) await pass();
    // w2 (started with w1) finishes 30 s later, and w3 takes its slot then.
    fake.clock = new Date(fake.clock.getTime() + 30_000);
    for (let i = 0; i < 6 && !byNode('w3'); i++) await pass();
    expect(byNode('w3')!.status!.phase).toBe('Updating');
    // 31 s on, w1 has overrun its nodeTimeout; w3 has not, so the run waits for it.
    fake.clock = new Date(fake.clock.getTime() + 31_000);
    await pass();
    const nodes = fake.rotation('late')!.status!.nodes!;
    expect(nodes.find((n) => n.name === 'w1')).toMatchObject({ phase: 'Failed', reason: 'NodeTimeout' });
    expect(nodes.find((n) => n.name === 'w3')!.phase).toBe('Updating');
    // Now both agents publish their keys: only w3, still in flight, is sealed to.
    for (const node of ['w1', 'w3']) fake.report(byNode(node)!.metadata.name!, { sealingKey: agentKey(byNode(node)!).publicKey });
    await reconcileRotation({ ...fake.deps(), rke }, 'late');
    expect(byNode('w1')!.sealedBundle).toBeUndefined();
    expect(byNode('w3')!.sealedBundle?.recipientKey).toBe(agentKey(byNode('w3')!).publicKey);
  }, 60_000);

  it('scope All: kube-admin is renewed in both states in the one state write, never in the bundle, and the user is told to refresh the local files', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    const logs: string[] = [];
    const deps = () => ({ ...fake.deps(), log: capturingLog(logs) });
    fake.apply('all', { strategy: { maxUnavailable: 2 } });
    const boxes = recordSeals(fake);
    for (let pass = 0; pass < 100 && fake.rotation('all')!.status?.phase !== 'Succeeded'; pass++) {
      await reconcileRotation({ ...deps(), rke }, 'all');
      for (const nr of fake.nodeRotationsByName.values()) {
        const report = nr.status?.phase === 'Pending' || nr.status?.phase === 'Updating' ? installing(nr, rke) : undefined;
        if (report) fake.report(nr.metadata.name!, report);
      }
    }
    expect(fake.rotation('all')!.status!.phase).toBe('Succeeded');
    expect(rke.ops.filter((o) => o === 'replace-state')).toHaveLength(1);
    // The bundle never held it, and no node was sealed it.
    expect(rke.bundleKeys).toHaveLength(1);
    const sealed = openedBundle(rke, 'uid-all-g1');
    expect([...sealed.keys()].filter((k) => k.startsWith('kube-admin'))).toEqual([]);
    expect([...sealed.keys()]).toContain('kube-apiserver');
    for (const box of boxes.values()) expect(box.entries.filter((k) => k.startsWith('kube-admin'))).toEqual([]);
    // Renewed in desiredState and currentState alike: signed by kube-ca, same subject, new key.
    const before = new X509Certificate(adminOf(initialState, 'currentState').certificatePEM!);
    const ca = new X509Certificate(parseFullState(initialState).currentState!.certificatesBundle!['kube-ca']!.certificatePEM!);
    const desired = adminOf(rke.state, 'desiredState');
    const current = adminOf(rke.state, 'currentState');
    expect(desired.certificatePEM === current.certificatePEM && desired.keyPEM === current.keyPEM).toBe(true);
    const after = new X509Certificate(current.certificatePEM!);
    expect(after.verify(ca.publicKey)).toBe(true);
    expect(after.subject).toBe(before.subject);
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(after.publicKey.export({ type: 'spki', format: 'der' }).equals(before.publicKey.export({ type: 'spki', format: 'der' }))).toBe(false);
    expect(current.keyPEM === adminOf(initialState, 'currentState').keyPEM).toBe(false);
    // Told once, by event and log, with the rke commands; no key material anywhere.
    const events = adminEvents(fake);
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('Normal');
    expect(events[0]!.message).toMatch(/kube-admin \(serial [0-9A-F]+, not after .*\) renewed in kube-system\/full-cluster-state/);
    expect(events[0]!.message).toMatch(/local kube_config_cluster\.yml and cluster\.rkestate are stale.*`rke util get-state-file` then `rke util get-kubeconfig`/);
    expect(logs.filter((l) => l.includes('rke util get-state-file'))).toHaveLength(1);
    const said = JSON.stringify([fake.events, logs, fake.rotation('all')!.status]);
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    expect({
      privateKeyText: said.includes('PRIVATE KEY'),
      newKey: said.includes(b64(current.keyPEM!)) || said.includes(JSON.stringify(current.keyPEM).slice(60, 120)),
    }).toEqual({ privateKeyText: false, newKey: false });
  }, 60_000);

  it.each([
    ['the state write conflicts once', { op: 'replace-state', error: new ConflictError('secrets', 'full-cluster-state', '1') }],
    ['a crash before the state write', { op: 'replace-state', error: new CrashError('crash') }],
    ['a crash before the bundle is deleted (state already written)', { op: 'delete-bundle', error: new CrashError('crash') }],
    ['a crash before the bundle is created', { op: 'create-bundle', error: new CrashError('crash') }],
  ])('%s: the next pass finishes the same run (one bundle, one state write)', async (_what, fail) => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    rke.failNext = fail;
    fake.apply('all', { strategy: { maxUnavailable: 2 } });
    await drive(fake, rke, 'all');
    expect(fake.rotation('all')!.status!.phase).toBe('Succeeded');
    expect(rke.ops.filter((o) => o.startsWith('create-bundle'))).toHaveLength(1);
    expect(rke.ops.filter((o) => o === 'replace-state')).toHaveLength(1);
    expect(rke.bundles.size).toBe(0);
    expect(stateSerials(rke.state).get('kube-apiserver')).not.toBe(stateSerials(initialState).get('kube-apiserver'));
    // kube-admin went in with that one write: renewed, and told once (a repeated pass issues no second one).
    expect(stateSerials(rke.state).get('kube-admin')).not.toBe(stateSerials(initialState).get('kube-admin'));
    expect(adminEvents(fake)).toHaveLength(1);
    expect(adminEvents(fake)[0]!.message).toContain(`serial ${stateSerials(rke.state).get('kube-admin')}`);
  }, 60_000);

  it('a node that rolls back: the run fails, the state is untouched byte for byte, the bundle is deleted', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    fake.apply('proxy', { scope: 'Service', service: 'kube-proxy' });
    await drive(fake, rke, 'proxy', (nr, r) =>
      nr.spec.nodeName === 'w1' ? { phase: 'RolledBack', step: 'Verifying', message: 'kube-proxy did not come back', finishedAt: FINISHED } : installing(nr, r),
    );
    expect(fake.rotation('proxy')!.status!.phase).toBe('Failed');
    expect(rke.state === initialState).toBe(true); // a diff would print keys
    expect(rke.bundles.size).toBe(0);
    expect(rke.ops.at(-1)).toBe('delete-bundle certrotator-rke-bundle');
    // A failed run leaves no sealed box behind either.
    expect([...fake.nodeRotationsByName.values()].filter((nr) => nr.sealedBundle)).toEqual([]);
    // The nodes that did rotate hold what the state does not: said in status and by an Event, with what to do.
    const phases = runPhases(fake, 'proxy', NODES.map((n) => n.metadata!.name!));
    const rotated = Object.keys(phases).filter((n) => phases[n] === 'Rotated');
    expect(rotated.length).toBeGreaterThan(0);
    const stalled = fake.rotation('proxy')!.status!.conditions!.find((c) => c.type === 'Stalled')!;
    expect(stalled.message).toContain(`RKE: ${rotated.length} node(s) (${rotated.join(', ')}) now hold new certificates that kube-system/full-cluster-state does not`);
    expect(stalled.message).toMatch(/next `rke up` deploys the certificates of the state again.*apply the rotation again/);
    expect(fake.events.filter((e) => e.reason === EVENT_REASONS.rkeStateNotUpdated).map((e) => e.type)).toEqual(['Warning']);
  }, 60_000);

  it("a leftover bundle of an earlier run is replaced, never handed to this run's nodes", async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    rke.bundles.set('certrotator-rke-bundle', { data: {}, runId: 'uid-old-g7' });
    fake.apply('fresh', { scope: 'Service', service: 'kube-proxy' });
    await drive(fake, rke, 'fresh');
    expect(fake.rotation('fresh')!.status!.phase).toBe('Succeeded');
    expect(rke.ops.slice(0, 2)).toEqual(['delete-bundle certrotator-rke-bundle', 'create-bundle certrotator-rke-bundle owner=fresh run=uid-fresh-g1']);
    expect(stateSerials(rke.state).get('kube-proxy')).not.toBe(stateSerials(initialState).get('kube-proxy'));
    expect(rke.bundles.size).toBe(0);
  }, 60_000);

  it('a failed run does not delete a bundle that is not its own', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    fake.apply('f', { scope: 'Service', service: 'kube-proxy' });
    await drive(fake, rke, 'f', (nr) => {
      rke.bundles.set('certrotator-rke-bundle', { data: {}, runId: 'uid-other-g1' });
      return { phase: 'RolledBack', step: 'Verifying', message: 'x', finishedAt: FINISHED, ...(nr ? {} : {}) };
    });
    expect(fake.rotation('f')!.status!.phase).toBe('Failed');
    expect(rke.bundles.get('certrotator-rke-bundle')?.runId).toBe('uid-other-g1');
    // No node rotated: the state describes every node, nothing to warn about.
    expect(fake.events.filter((e) => e.reason === EVENT_REASONS.rkeStateNotUpdated)).toEqual([]);
    expect(fake.rotation('f')!.status!.conditions!.find((c) => c.type === 'Stalled')!.message).not.toContain('full-cluster-state does not');
  });

  it('a state the certificates cannot be issued from (no kube-ca key): no node is instructed, the run fails naming why', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    rke.state = rke.state.split(JSON.stringify(JSON.parse(initialState).currentState.certificatesBundle['kube-ca'].keyPEM)).join('""');
    fake.apply('nokey', { scope: 'Service', service: 'kube-proxy' });
    await drive(fake, rke, 'nokey');
    const st = fake.rotation('nokey')!.status!;
    expect(st.phase).toBe('Failed');
    expect(fake.nodeRotationsByName.size).toBe(0);
    expect(st.nodes!.find((n) => n.phase === 'Failed')!.message).toMatch(/could not be issued from kube-system\/full-cluster-state: .*kube-ca has no certificatePEM\/keyPEM/);
    expect(st.conditions!.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True' });
    expect(rke.ops).toEqual([]);
    expect(JSON.stringify(st)).not.toContain('PRIVATE KEY');
  }, 30_000);

  it('the bundle disappears mid-run: it is not issued a second time, the remaining nodes fail unstarted', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    fake.apply('mid', { scope: 'Service', service: 'kubelet' });
    await drive(fake, rke, 'mid', (nr, r) => {
      const report = installing(nr, r);
      if (nr.spec.nodeName === 'e1' && report?.phase === 'Rotated') r.bundles.clear();
      return report;
    });
    const st = fake.rotation('mid')!.status!;
    expect(st.phase).toBe('Failed');
    expect(rke.ops.filter((o) => o.startsWith('create-bundle'))).toHaveLength(1);
    expect(runPhases(fake, 'mid', ['e1', 'c1', 'w1', 'w2'])).toEqual({ e1: 'Rotated', c1: 'Failed', w1: 'Pending', w2: 'Pending' });
    expect(st.nodes!.find((n) => n.name === 'c1')!.message).toMatch(/disappeared after 1 node\(s\) were instructed/);
    expect(rke.state === initialState).toBe(true); // a diff would print keys
  }, 30_000);

  it('no full-cluster-state: the nodes sign on their hosts (no bundle, nothing to commit)', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    rke.readState = async () => undefined;
    fake.apply('none', { scope: 'Service', service: 'kube-proxy' });
    await drive(fake, rke, 'none', () => ({ phase: 'Rotated', step: 'Done', finishedAt: FINISHED }));
    expect(fake.rotation('none')!.status!.phase).toBe('Succeeded');
    expect([...fake.nodeRotationsByName.values()].map((nr) => nr.spec.bundleSecretRef)).toEqual(Array(4).fill(undefined));
    expect(rke.ops).toEqual([]);
  });

  it('the bundle is gone and the state does not hold what the nodes report: the run does not claim success', async () => {
    const fake = clusterAfterTheCas();
    const rke = new FakeRke();
    fake.apply('lost', { scope: 'Service', service: 'kube-proxy' });
    await expect(
      drive(fake, rke, 'lost', (nr, r) => {
        const report = installing(nr, r);
        if (nr.spec.nodeName === 'w2' && report?.phase === 'Rotated') r.bundles.clear(); // someone deletes it before the last report is taken in
        return report;
      }),
    ).rejects.toThrow(/bundle Secret .* is gone and full-cluster-state does not hold/);
    expect(fake.rotation('lost')!.status!.phase).toBe('Progressing');
    expect(rke.state === initialState).toBe(true); // a diff would print keys
  });
});
