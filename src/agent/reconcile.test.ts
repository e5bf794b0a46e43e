import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type { CertificateRotation } from '../api/certificaterotation.js';
import type { NodeRotation, NodeRotationStatus } from '../api/noderotation.js';
import { NodeRotationError, type NodeRotationResult, type ProgressEvent } from '../host/rotation.js';
import { newSealingKeyPair } from '../pki/seal.js';
import type { HostRunner } from './host-runner.js';
import { reconcileNodeRotation, type AgentDeps } from './reconcile.js';
import { SealingKeys } from './sealing-keys.js';
import { sealForNode } from '../controller/rke-bundle.js';

const NOW = new Date('2026-11-27T12:00:00Z');

function instruction(over: Partial<NodeRotation['spec']> = {}, status?: NodeRotationStatus): NodeRotation {
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'NodeRotation',
    metadata: {
      name: 'r-g1-node-a',
      resourceVersion: '7',
      ownerReferences: [{ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', name: 'r', uid: 'uid', controller: true }],
    },
    spec: {
      rotation: 'r',
      generation: 1,
      runID: 'uid-g1',
      nodeName: 'node-a',
      role: 'etcd,controlplane',
      action: 'Rotate',
      distribution: 'rke2',
      scope: 'Service',
      services: ['api-server'],
      restart: true,
      timeout: '10m',
      onFailure: 'Rollback',
      ...over,
    },
    ...(status ? { status } : {}),
  };
}

const ok: NodeRotationResult = {
  resumed: false,
  backupDir: 'var/lib/rancher/rke2/server/tls-1795000000',
  clusterObjects: [],
  files: [
    {
      service: 'api-server',
      id: 'serving-kube-apiserver',
      path: 'var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt',
      renewal: 'sign',
      oldSerial: 'aa',
      newSerial: 'bb',
      notAfter: '2027-11-27T11:00:00.000Z',
      servedVerified: true,
      backupPath: 'var/lib/rancher/rke2/server/tls-1795000000/serving-kube-apiserver.crt',
      status: 'renewed',
    },
  ],
};

// The owner as the API server has it: running generation 1.
const OWNER = { apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: 'r', uid: 'uid' }, status: { runGeneration: 1 } } as unknown as CertificateRotation;

// `fresh` is what the API server has, which can be ahead of the cache (`nr`).
function harness(nr: NodeRotation | undefined, run: HostRunner['run'], fresh: NodeRotation | undefined = nr, check: HostRunner['check'] = async () => [], owner: CertificateRotation | null = OWNER) {
  const patches: Partial<NodeRotationStatus>[] = [];
  const sealingKeys = new SealingKeys();
  let runs = 0;
  let checks = 0;
  const deps: AgentDeps = {
    nodeName: 'node-a',
    agentName: 'agent-pod',
    get: (name) => (nr?.metadata.name === name ? nr : undefined),
    getFresh: async (name) => (fresh?.metadata.name === name ? fresh : undefined),
    getRotation: async (name) => (owner?.metadata?.name === name ? owner : undefined),
    patchStatus: async (_name, status) => void patches.push(status),
    runner: {
      run: async (spec, onProgress, bundle) => {
        runs++;
        return run(spec, onProgress, bundle);
      },
      check: async (spec) => {
        checks++;
        return check(spec);
      },
    },
    sealingKeys,
    now: () => NOW,
    log: pino({ level: 'silent' }),
  };
  return { deps, patches, runs: () => runs, checks: () => checks, sealingKeys };
}

const steps = (events: ProgressEvent['step'][]) => async (_spec: unknown, onProgress: (e: ProgressEvent) => void) => {
  for (const step of events) onProgress({ step, message: `${step} message` });
  return ok;
};

describe('reconcileNodeRotation', () => {
  it('marks the node Updating before the host is touched, reports each step, then every file', async () => {
    const h = harness(instruction(), steps(['plan', 'prepare', 'backup', 'install', 'restart', 'verify', 'done']));
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.patches[0]).toMatchObject({ phase: 'Updating', runID: 'uid-g1', agent: 'agent-pod', step: 'BackingUp', startedAt: NOW.toISOString() });
    expect(h.patches.slice(1, -1).map((p) => p.step)).toEqual(['Renewing', 'Restarting', 'Verifying']);
    expect(h.patches.at(-1)).toEqual({
      phase: 'Rotated',
      step: 'Done',
      message: 'node node-a: 1 files rotated',
      backupPath: '/var/lib/rancher/rke2/server/tls-1795000000',
      finishedAt: NOW.toISOString(),
      files: [
        {
          service: 'api-server',
          path: '/var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt',
          oldSerial: 'aa',
          newSerial: 'bb',
          newNotAfter: '2027-11-27T11:00:00.000Z',
          servedVerified: true,
          backupPath: '/var/lib/rancher/rke2/server/tls-1795000000/serving-kube-apiserver.crt',
        },
      ],
    });
  });

  // Only the controller's instruction for its current run is obeyed (admission is the first line; this is the agent's).
  const withOwners = (refs: unknown[]): NodeRotation => ({ ...instruction(), metadata: { ...instruction().metadata, ownerReferences: refs as never } });
  const ref = { apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', name: 'r', uid: 'uid', controller: true };
  const refusals: [string, NodeRotation, CertificateRotation | null, RegExp][] = [
    ['no owner at all (created by hand)', withOwners([]), OWNER, /not owned by CertificateRotation r/],
    ['an owner of another kind', withOwners([{ ...ref, kind: 'ConfigMap' }]), OWNER, /not owned by CertificateRotation r/],
    ['an owner that is not the rotation named in spec', withOwners([{ ...ref, name: 'other' }]), OWNER, /not owned by CertificateRotation r/],
    ['two controller owners', withOwners([ref, { ...ref, uid: 'uid2' }]), OWNER, /not owned by CertificateRotation r/],
    ['a runID not made from the owner\'s uid and the generation', instruction({ runID: 'forged-g1' }), OWNER, /runID forged-g1 is not the one of CertificateRotation r \(uid uid\) generation 1/],
    ['an owner that does not exist', instruction(), null, /CertificateRotation r does not exist/],
    ['an owner deleted and created again (another uid)', instruction(), { ...OWNER, metadata: { name: 'r', uid: 'new-uid' } } as CertificateRotation, /has uid new-uid, not the owner's uid/],
    ['a run that is not the owner\'s current one', instruction(), { ...OWNER, status: { runGeneration: 2 } } as CertificateRotation, /is running generation 2, not 1/],
  ];
  it.each(refusals)('refuses %s: Failed, nothing run, the reason in status', async (_what, nr, owner, why) => {
    const h = harness(nr, steps(['done']), nr, async () => [], owner);
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.runs()).toBe(0);
    expect(h.patches).toHaveLength(1);
    expect(h.patches[0]).toMatchObject({ phase: 'Failed', runID: nr.spec.runID, agent: 'agent-pod', finishedAt: NOW.toISOString() });
    expect(h.patches[0]!.message).toMatch(/^node node-a: refused, nothing done: /);
    expect(h.patches[0]!.message).toMatch(why);
  });

  it('a Check is obeyed for any generation of an owner that exists (plan mode does not record a run generation)', async () => {
    const nr = instruction({ action: 'Check' });
    const h = harness(nr, steps(['done']), nr, async () => [], { ...OWNER, status: {} } as CertificateRotation);
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.checks()).toBe(1);
    expect(h.patches.at(-1)).toMatchObject({ phase: 'Checked' });
  });

  const nothingToDo: [string, NodeRotation | undefined][] = [
    ['a deleted instruction', undefined],
    ['an instruction for another node', instruction({ nodeName: 'node-b' })],
    ['a run already reported Rotated', instruction({}, { phase: 'Rotated', runID: 'uid-g1' })],
    ['a run already reported RolledBack', instruction({}, { phase: 'RolledBack', runID: 'uid-g1' })],
    ['a run already reported Failed', instruction({}, { phase: 'Failed', runID: 'uid-g1' })],
  ];
  it.each(nothingToDo)('does nothing for %s', async (_what, nr) => {
    const h = harness(nr, steps(['done']));
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.runs()).toBe(0);
    expect(h.patches).toEqual([]);
  });

  it('resumes an Updating run of the same runID, keeping its start time and step', async () => {
    const h = harness(
      instruction({}, { phase: 'Updating', runID: 'uid-g1', step: 'Restarting', startedAt: '2026-11-27T11:59:00Z' }),
      steps(['restart', 'verify', 'done']),
    );
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.runs()).toBe(1);
    expect(h.patches[0]).toMatchObject({ phase: 'Updating', startedAt: '2026-11-27T11:59:00Z', step: 'Restarting', message: 'resuming on node-a' });
    expect(h.patches.at(-1)?.phase).toBe('Rotated');
  });

  it('does nothing when the cache lags and the API server already has the final report', async () => {
    const cached = instruction({}, { phase: 'Updating', runID: 'uid-g1', step: 'Verifying' });
    const h = harness(cached, steps(['done']), instruction({}, { phase: 'Rotated', runID: 'uid-g1' }));
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.runs()).toBe(0);
    expect(h.patches).toEqual([]);
  });

  it('does not call a run that had already finished on the host "resumed"', async () => {
    const h = harness(instruction(), async () => ({ ...ok, resumed: true, alreadyFinished: true }));
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.patches.at(-1)?.message).toBe('node node-a: 1 files rotated');
  });

  it('says a run continued from its journal was resumed', async () => {
    const h = harness(instruction(), async () => ({ ...ok, resumed: true }));
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.patches.at(-1)?.message).toBe('node node-a: 1 files rotated (resumed after an interruption)');
  });

  it('treats a report of an older run as not done', async () => {
    const h = harness(instruction({}, { phase: 'Rotated', runID: 'uid-g0' }), steps(['done']));
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.runs()).toBe(1);
    expect(h.patches.at(-1)?.phase).toBe('Rotated');
  });

  const failures: [string, NodeRotationError, string, RegExp][] = [
    [
      'rolled back',
      new NodeRotationError('verify', '127.0.1.1:6443 serves serial aa, expected bb', true, 'var/lib/rancher/rke2/server/tls-1'),
      'RolledBack',
      /^node node-a: step Verifying failed: 127\.0\.1\.1:6443 serves serial aa, expected bb; rolled back from \/var\/lib\/rancher\/rke2\/server\/tls-1$/,
    ],
    [
      'not rolled back',
      new NodeRotationError('restart', 'systemctl start rke2-server: exit 1', false, 'var/lib/rancher/rke2/server/tls-1'),
      'Failed',
      /^node node-a: step Restarting failed: systemctl start rke2-server: exit 1; not rolled back$/,
    ],
  ];
  it.each(failures)('reports a failure that was %s with the node and the step', async (_what, error, phase, message) => {
    const h = harness(instruction(), async () => {
      throw error;
    });
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.patches.at(-1)).toMatchObject({ phase, backupPath: '/var/lib/rancher/rke2/server/tls-1', finishedAt: NOW.toISOString() });
    expect(h.patches.at(-1)?.message).toMatch(message);
  });

  it('lets the queue retry an error that is not a host-step failure, without a final report', async () => {
    const h = harness(instruction(), async () => {
      throw new Error('connection reset');
    });
    await expect(reconcileNodeRotation(h.deps, 'r-g1-node-a')).rejects.toThrow('connection reset');
    expect(h.patches.map((p) => p.phase)).toEqual(['Updating']);
  });

  it('answers a Check with what it found and never runs the host steps', async () => {
    const found = [
      { service: 'api-server', path: 'var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt', serial: '0A', notAfter: '2027-03-01T00:00:00.000Z', status: 'OK' as const },
      { service: 'api-server', path: 'var/lib/rancher/rke2/server/tls/client-kube-apiserver.crt', serial: '0B', notAfter: '2026-12-24T00:00:00.000Z', status: 'OK' as const },
      { service: 'api-server', path: 'var/lib/rancher/rke2/server/tls/client-auth-proxy.crt', error: 'missing', status: 'ERROR' as const },
    ];
    const h = harness(instruction({ action: 'Check' }), steps(['done']), undefined, async () => found);
    h.deps.getFresh = async () => instruction({ action: 'Check' });
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.runs()).toBe(0);
    expect(h.checks()).toBe(1);
    expect(h.patches).toHaveLength(1);
    expect(h.patches[0]).toMatchObject({ phase: 'Checked', runID: 'uid-g1', agent: 'agent-pod', finishedAt: NOW.toISOString() });
    expect(h.patches[0]!.files).toEqual([
      { service: 'api-server', path: '/var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt', oldSerial: '0A', notAfter: '2027-03-01T00:00:00.000Z' },
      { service: 'api-server', path: '/var/lib/rancher/rke2/server/tls/client-kube-apiserver.crt', oldSerial: '0B', notAfter: '2026-12-24T00:00:00.000Z' },
      { service: 'api-server', path: '/var/lib/rancher/rke2/server/tls/client-auth-proxy.crt', error: 'missing' },
    ]);
    expect(h.patches[0]!.message).toBe(
      'node node-a: 2 certificate(s) read, nothing changed; earliest notAfter 2026-12-24T00:00:00.000Z (api-server, /var/lib/rancher/rke2/server/tls/client-kube-apiserver.crt); 1 file(s) could not be read',
    );

    // Reported: a second pass does nothing.
    const done = harness(instruction({ action: 'Check' }, { phase: 'Checked', runID: 'uid-g1' }), steps(['done']));
    await reconcileNodeRotation(done.deps, 'r-g1-node-a');
    expect(done.checks()).toBe(0);
    expect(done.patches).toEqual([]);
  });

  it('reports a Check that cannot read the host at all as Failed, naming the node', async () => {
    const h = harness(instruction({ action: 'Check' }), steps(['done']), undefined, async () => {
      throw new Error('/host/var/lib/rancher/rke2: no such directory');
    });
    h.deps.getFresh = async () => instruction({ action: 'Check' });
    await reconcileNodeRotation(h.deps, 'r-g1-node-a');
    expect(h.patches).toEqual([
      expect.objectContaining({ phase: 'Failed', message: 'node node-a: check failed: /host/var/lib/rancher/rke2: no such directory' }),
    ]);
  });
});

describe('reconcileNodeRotation, RKE: certificates sealed to this agent', () => {
  const PAIR = { certPem: 'CERT', keyPem: 'KEY' };
  const rke = (): NodeRotation => instruction({ distribution: 'rke', role: 'worker', services: ['kube-proxy'], bundleSecretRef: { namespace: 'certrotator-system', name: 'certrotator-rke-bundle' } });
  // The host steps as the runner takes them: the pairs are fetched when prepared, then reported.
  const installing = async (_spec: unknown, _p: unknown, bundle?: () => Promise<ReadonlyMap<string, unknown>>) => {
    const pairs = await bundle!();
    return { ...ok, files: ok.files.map((f) => ({ ...f, id: [...pairs.keys()].join(',') })) };
  };

  it('publishes a key made for this run with the Updating report, and waits (nothing touched) until a box sealed to it arrives', async () => {
    const nr = rke();
    const h = harness(nr, installing);
    const result = await reconcileNodeRotation(h.deps, nr.metadata.name!);
    expect(result).toEqual({ requeueAfterMs: 5_000 });
    expect(h.patches).toHaveLength(1);
    expect(h.patches[0]).toMatchObject({ phase: 'Updating', sealingKey: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    // The controller seals to the published key; the next pass opens it and rotates, then forgets the key.
    const published = h.patches[0]!.sealingKey!;
    nr.sealedBundle = { ...sealForNode(new Map([['kube-proxy', PAIR]]), ['kube-proxy'], published, nr.spec.runID, 'node-a'), entries: ['kube-proxy'] };
    await reconcileNodeRotation(h.deps, nr.metadata.name!);
    expect(h.patches[1]!.sealingKey).toBe(published);
    expect(h.patches.at(-1)).toMatchObject({ phase: 'Rotated' });
    expect(h.sealingKeys.size).toBe(0);
  });

  it('no box within the verification budget of the timeout (counted from pick-up): Failed at prepare, nothing touched', async () => {
    const picked = new Date(NOW.getTime() - 8 * 60_000).toISOString(); // 8 min ago; the budget is 70% of 10m
    const nr = { ...rke(), status: { phase: 'Updating' as const, runID: 'uid-g1', startedAt: picked, step: 'BackingUp' as const } };
    const h = harness(nr, installing);
    await reconcileNodeRotation(h.deps, nr.metadata.name!);
    expect(h.patches.at(-1)).toMatchObject({ phase: 'Failed' });
    expect(h.patches.at(-1)!.message).toMatch(/did not seal this node's certificates to this agent within its time .*nothing was changed/);
  });

  it('a box sealed to an earlier key (this agent restarted) is waited past, not opened', async () => {
    const nr = rke();
    nr.sealedBundle = { ...sealForNode(new Map([['kube-proxy', PAIR]]), ['kube-proxy'], newSealingKeyPair().publicKey, nr.spec.runID, 'node-a'), entries: ['kube-proxy'] };
    const h = harness(nr, installing);
    expect(await reconcileNodeRotation(h.deps, nr.metadata.name!)).toEqual({ requeueAfterMs: 5_000 });
    expect(h.patches.map((p) => p.phase)).toEqual(['Updating']);
  });

  it('a box sealed to this key for another node does not open: Failed at prepare, nothing touched', async () => {
    const nr = rke();
    const key = new SealingKeys();
    const h = harness(nr, installing);
    h.deps.sealingKeys = key;
    const published = key.forRun(nr.spec.runID).publicKey;
    nr.sealedBundle = { ...sealForNode(new Map([['kube-proxy', PAIR]]), ['kube-proxy'], published, nr.spec.runID, 'node-b'), entries: ['kube-proxy'] };
    await reconcileNodeRotation(h.deps, nr.metadata.name!);
    expect(h.patches.at(-1)).toMatchObject({ phase: 'Failed', step: 'BackingUp' });
    expect(h.patches.at(-1)!.message).toMatch(/do not open/);
    expect(key.size).toBe(0);
  });
});
