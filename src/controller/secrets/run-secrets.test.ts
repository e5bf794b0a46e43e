// A scope: Secrets, mode: Apply rotation through the controller's sync
// function: the in-memory fake of the CertificateRotation API (fake-cluster.ts),
// a fixed discovery world, the in-memory run cluster (fake-run-cluster.ts) and
// a real TLS server that the fake's "pods" restart with the Secret's contents.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { CertificateRotationSpecInput } from '../../api/certificaterotation.js';
import { FINALIZER } from '../../api/constants.js';
import { b64, issueServing, makeCa } from '../../../test/secrets/webhook-pki.js';
import { WebhookServer } from '../../../test/secrets/webhook-server.js';
import { FakeCluster } from '../fake-cluster.js';
import { reconcileRotation } from '../reconcile-rotation.js';
import type { DiscoveryInput } from './discovery.js';
import { decode } from './discovery.js';
import { FakeSecretRunCluster } from './fake-run-cluster.js';
import { SERVING_SERIAL_ANNOTATION } from './rollout.js';

const ca = makeCa({ cn: 'hook-ca', back: 10 });
const hookLeaf = issueServing(ca, { cn: 'hook.web.svc', dns: ['hook.web.svc'], days: 60, back: 50 });
const otherCa = makeCa({ cn: 'other-ca' });
const orphanLeaf = issueServing(otherCa, { cn: 'orphan.web.svc', dns: ['orphan.web.svc'] });
const pair = (p: { certPem: string; keyPem: string }) => ({ 'tls.crt': b64(p.certPem), 'tls.key': b64(p.keyPem) });

/** What discovery reads: one webhook whose CA key is in the cluster; optionally one whose CA is nowhere. */
function world(withOrphan = false): DiscoveryInput {
  const hook = { kind: 'ValidatingWebhookConfiguration' as const, name: 'hook.example.com', service: { namespace: 'web', name: 'hook' }, caBundle: ca.certPem };
  const orphan = { kind: 'ValidatingWebhookConfiguration' as const, name: 'orphan.example.com', service: { namespace: 'web', name: 'orphan' }, caBundle: otherCa.certPem };
  return {
    fronts: withOrphan ? [hook, orphan] : [hook],
    services: [
      { namespace: 'web', name: 'hook', selector: { app: 'hook' }, endpointPods: [] },
      { namespace: 'web', name: 'orphan', selector: { app: 'orphan' }, endpointPods: [] },
    ],
    pods: [
      { namespace: 'web', name: 'hook-1', labels: { app: 'hook' }, owner: { kind: 'ReplicaSet', name: 'hook-5d8f' }, secretNames: ['hook-tls'] },
      { namespace: 'web', name: 'orphan-1', labels: { app: 'orphan' }, owner: { kind: 'ReplicaSet', name: 'orphan-77aa' }, secretNames: ['orphan-tls'] },
    ],
    replicaSetOwners: new Map([
      ['web/hook-5d8f', { kind: 'Deployment', name: 'hook' }],
      ['web/orphan-77aa', { kind: 'Deployment', name: 'orphan' }],
    ]),
    secrets: [
      { namespace: 'web', name: 'hook-tls', labels: {}, annotations: {}, data: pair(hookLeaf) },
      { namespace: 'web', name: 'hook-ca', labels: {}, annotations: {}, data: pair(ca) },
      { namespace: 'web', name: 'orphan-tls', labels: {}, annotations: {}, data: pair(orphanLeaf) },
    ],
    now: new Date(),
  };
}

const server = new WebhookServer('127.0.0.1');
let fake: FakeCluster;
let runCluster: FakeSecretRunCluster;
let withOrphan: boolean;

const SPEC: CertificateRotationSpecInput = { scope: 'Secrets', mode: 'Apply', secrets: { namespaces: ['web'] }, strategy: { nodeTimeout: '20s' } };
let finished: string[];
const reconcile = (name = 'renew') =>
  reconcileRotation({ ...fake.deps(), secretTargets: { read: async () => world(withOrphan) }, secretRun: runCluster, metrics: { runFinished: (result) => finished.push(result) } }, name);

/** Passes of the sync function until it asks for nothing more, the fake clock following its requeues. */
async function settle(name = 'renew'): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const r = (await reconcile(name)) as { requeueAfterMs?: number } | undefined;
    if (r?.requeueAfterMs === undefined) {
      // A status write wakes the controller again (the informer's event): one more pass with nothing to do ends it.
      const before = fake.writes.length;
      await reconcile(name);
      if (fake.writes.length === before) return;
      continue;
    }
    fake.advance(Math.max(r.requeueAfterMs, 1));
  }
  throw new Error('the run did not settle in 60 passes');
}

beforeEach(async () => {
  withOrphan = false;
  finished = [];
  fake = new FakeCluster([]);
  // Real time: the renewed certificate is checked by a real TLS client, which reads the real clock.
  fake.clock = new Date();
  runCluster = new FakeSecretRunCluster();
  runCluster.namespaceList = [{ name: 'web', labels: {} }];
  runCluster.putSecret({ metadata: { namespace: 'web', name: 'hook-tls' }, type: 'kubernetes.io/tls', data: pair(hookLeaf) });
  runCluster.putSecret({ metadata: { namespace: 'web', name: 'hook-ca' }, type: 'kubernetes.io/tls', data: pair(ca) });
  runCluster.putDeployment('web', 'hook');
  runCluster.putValidatingWebhook('hook.example.com', { namespace: 'web', name: 'hook' }, b64(ca.certPem));
  const serve = async (p = 0) => {
    const s = (await runCluster.getSecret({ namespace: 'web', name: 'hook-tls' }))!;
    return server.serve({ certPem: decode(s.data!['tls.crt']), keyPem: decode(s.data!['tls.key']) }, p);
  };
  const port = await serve();
  runCluster.endpointList = [{ address: '127.0.0.1', port }];
  runCluster.onRolled = async () => {
    await serve(port);
  };
});
afterEach(() => server.stop());

const condition = (type: string) => fake.rotation('renew')!.status!.conditions!.find((c) => c.type === type)!;

describe('scope: Secrets, mode: Apply', () => {
  it('renews the one target, Ready=True/Succeeded with progress 1/1, events for the target and the run, no key material in status or events', async () => {
    fake.apply('renew', SPEC);
    await settle();
    const status = fake.rotation('renew')!.status!;
    expect(status).toMatchObject({ phase: 'Succeeded', progress: '1/1', observedGeneration: 1, runGeneration: 1 });
    expect(status.secretRun!.targets).toEqual([expect.objectContaining({ secret: { namespace: 'web', name: 'hook-tls' }, workload: 'Deployment/hook', phase: 'Rotated' })]);
    expect(condition('Ready')).toMatchObject({ status: 'True', reason: 'Succeeded' });
    expect(condition('Ready').message).toMatch(/^1 Secret-backed certificate\(s\) renewed, rolled and verified: web\/hook-tls/);
    expect(fake.events.map((e) => e.reason)).toEqual(['SecretRenewed', 'RunSucceeded']);
    expect(finished).toEqual(['succeeded']);
    expect(fake.rotation('renew')!.metadata.finalizers).toEqual([FINALIZER]);
    expect(JSON.stringify(status) + JSON.stringify(fake.events)).not.toMatch(/PRIVATE KEY|LS0tLS1CRUdJTi/);
    // Settled: another pass discovers nothing again and writes nothing.
    const writes = runCluster.writes.length;
    await reconcile();
    expect(runCluster.writes.length).toBe(writes);
  });

  it('a target in scope that cannot be renewed in place refuses the whole run, naming it; nothing is written', async () => {
    withOrphan = true;
    fake.apply('renew', SPEC);
    await reconcile();
    expect(condition('Stalled')).toMatchObject({ status: 'True', reason: 'SecretTargetsNotRenewable' });
    expect(condition('Stalled').message).toMatch(/^1 Secret-backed certificate\(s\) in scope cannot be renewed: web\/orphan-tls \(CannotRenew: its CA is known \(caBundle of ValidatingWebhookConfiguration\/orphan\.example\.com only\) but its private key is not in the cluster.*\)\. Nothing was changed; narrow spec\.secrets/);
    expect(runCluster.writes).toEqual([]);
    // A pre-run problem holds no slot: another rotation may start.
    fake.apply('other', { ...SPEC, secrets: { secretRefs: [{ namespace: 'web', name: 'hook-tls' }] } });
    await settle('other');
    expect(fake.rotation('other')!.status!.phase).toBe('Succeeded');
  });

  it('a Secret named by reference that no front calls into is refused: nothing could verify its renewal', async () => {
    fake.apply('renew', { ...SPEC, secrets: { secretRefs: [{ namespace: 'web', name: 'hook-tls' }] } });
    await reconcileRotation({ ...fake.deps(), secretTargets: { read: async () => ({ ...world(), fronts: [] }) }, secretRun: runCluster }, 'renew');
    expect(condition('Stalled')).toMatchObject({ status: 'True', reason: 'SecretTargetsNotRenewable' });
    expect(condition('Stalled').message).toMatch(/web\/hook-tls \(CannotRenew: no webhook configuration, APIService or conversion webhook calls a Service that serves it, so a renewal could not be verified\)/);
    expect(runCluster.writes).toEqual([]);
  });

  it('spec.paused holds the run before its next target; unpausing (a new generation, same targets) continues the same run', async () => {
    fake.apply('renew', { ...SPEC, paused: true });
    await settle();
    expect(fake.rotation('renew')!.status!.phase).toBe('Paused');
    expect(condition('Reconciling')).toMatchObject({ status: 'True', reason: 'Paused', message: 'paused by spec.paused at 0/1; set spec.paused: false to continue' });
    expect(runCluster.writes).toEqual([]);
    fake.updateSpec('renew', (spec) => {
      spec.paused = false;
    });
    await settle();
    const status = fake.rotation('renew')!.status!;
    expect(status).toMatchObject({ phase: 'Succeeded', runGeneration: 1, observedGeneration: 2 });
  });

  it('one rotation at a time: a second Apply waits Queued behind the running one, then runs', async () => {
    runCluster.rolls = () => false; // the first run's rollout waits
    fake.apply('renew', SPEC);
    await reconcile();
    expect(fake.rotation('renew')!.status!.phase).toBe('Progressing');
    fake.apply('second', SPEC);
    await reconcile('second');
    const queued = fake.rotation('second')!.status!.conditions!.find((c) => c.type === 'Reconciling')!;
    expect(queued).toMatchObject({ status: 'True', reason: 'Queued' });
    expect(queued.message).toMatch(/renew/);
  });

  it('a rollout that never finishes: the target is rolled back and the run is Stalled naming the Secret, the workload and the step', async () => {
    runCluster.rolls = (a) => a[SERVING_SERIAL_ANNOTATION] === undefined;
    fake.apply('renew', SPEC);
    await settle();
    const status = fake.rotation('renew')!.status!;
    expect(status.phase).toBe('Failed');
    expect(condition('Stalled')).toMatchObject({ status: 'True', reason: 'SecretTargetRolledBack' });
    expect(condition('Stalled').message).toMatch(/^Secret web\/hook-tls \(Deployment\/hook\) failed at step Rollout and was rolled back: Rollout failed: the rollout did not finish within nodeTimeout 20s.*; 0\/1 renewed, the run is stopped$/);
    expect((await runCluster.getSecret({ namespace: 'web', name: 'hook-tls' }))!.data).toEqual(pair(hookLeaf));
    expect(fake.events.map((e) => e.reason)).toEqual(['SecretRolledBack', 'RunFailed']);
    expect(finished).toEqual(['failed']);
  });

  it('deleted mid-run: the target in flight finishes first, then the finalizer is released', async () => {
    let rolled = false;
    runCluster.rolls = () => rolled;
    fake.apply('renew', SPEC);
    await reconcile();
    expect(fake.rotation('renew')!.status!.secretRun!.targets[0]!.step).toBe('Rollout');
    fake.deleteRotation('renew');
    fake.advance(2000);
    await reconcile();
    expect(fake.rotation('renew')).toBeDefined(); // still waiting for the rollout
    rolled = true;
    await runCluster.patchTemplateAnnotations('web', 'Deployment/hook', {}); // the workload controller catches up
    await settle();
    expect(fake.rotation('renew')).toBeUndefined();
    expect(runCluster.writes.filter((w) => w.startsWith('delete'))).toHaveLength(1); // the backup, after verification
  });
});
