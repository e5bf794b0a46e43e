// A scope: Secrets rotation through the controller's sync function, with the
// in-memory fake cluster and a discovery source that returns a fixed world.
import { describe, expect, it } from '@jest/globals';
import { ApiException } from '@kubernetes/client-node';
import { b64, issueServing, makeCa } from '../../../test/secrets/webhook-pki.js';
import { FakeCluster } from '../fake-cluster.js';
import { reconcileRotation } from '../reconcile-rotation.js';
import type { SecretTargetSource } from './cluster-read.js';
import { describeSecretPlan } from './plan-secrets.js';
import type { DiscoveryInput } from './discovery.js';

function world(): DiscoveryInput {
  const ca = makeCa({ cn: 'hook-ca' });
  const leaf = issueServing(ca, { cn: 'hook.web.svc', dns: ['hook.web.svc'] });
  const pair = (certPem: string, keyPem: string) => ({ 'tls.crt': b64(certPem), 'tls.key': b64(keyPem) });
  return {
    fronts: [{ kind: 'ValidatingWebhookConfiguration', name: 'hook.example.com', service: { namespace: 'web', name: 'hook' }, caBundle: ca.certPem }],
    services: [{ namespace: 'web', name: 'hook', selector: { app: 'hook' }, endpointPods: [] }],
    pods: [{ namespace: 'web', name: 'hook-1', labels: { app: 'hook' }, owner: { kind: 'DaemonSet', name: 'hook' }, secretNames: ['hook-tls'] }],
    replicaSetOwners: new Map(),
    secrets: [
      { namespace: 'web', name: 'hook-tls', labels: {}, annotations: {}, data: pair(leaf.certPem, leaf.keyPem) },
      { namespace: 'web', name: 'hook-ca', labels: {}, annotations: {}, data: pair(ca.certPem, ca.keyPem) },
    ],
    now: new Date(),
  };
}

function setup(source: SecretTargetSource): { fake: FakeCluster; run: () => Promise<unknown> } {
  const fake = new FakeCluster([]);
  fake.apply('webhooks', { scope: 'Secrets', mode: 'Plan', secrets: {} });
  return { fake, run: () => reconcileRotation({ ...fake.deps(), secretTargets: source }, 'webhooks') };
}

describe('scope: Secrets, mode: Plan', () => {
  it('publishes status.secretPlan and Ready=True/Planned in one pass, then settles (no second discovery)', async () => {
    let reads = 0;
    const input = world();
    const { fake, run } = setup({ read: async () => (reads++, input) });
    await run();
    const status = fake.rotation('webhooks')!.status!;
    expect(status).toMatchObject({ observedGeneration: 1, phase: 'Planned', progress: '0/1' });
    expect(status.secretPlan).toMatchObject({ total: 1, renewInPlace: 1, targets: [{ secret: { namespace: 'web', name: 'hook-tls' }, workload: 'DaemonSet/hook', action: 'RenewInPlace' }] });
    const ready = status.conditions!.find((c) => c.type === 'Ready')!;
    expect(ready).toMatchObject({ status: 'True', reason: 'Planned' });
    expect(ready.message).toMatch(/^planned 1 Secret-backed certificate\(s\): 1 renew in place, 0 regenerate, 0 left alone, 0 cannot renew; nothing changed; earliest notAfter /);
    expect(fake.events.map((e) => e.reason)).toEqual(['Planned']);
    // Nothing but the status was written: no NodeRotation, no finalizer.
    expect(fake.writes.filter((w) => !w.startsWith('status '))).toEqual([]);
    expect(fake.created).toEqual([]);
    // Neither the status nor the events carry key material.
    expect(JSON.stringify(status) + JSON.stringify(fake.events)).not.toMatch(/PRIVATE KEY|tls\.key/);
    await run();
    expect(reads).toBe(1);
  });

  it('a 403 from discovery: Stalled/DiscoveryForbidden naming what to grant, retried later; a later pass that may read plans', async () => {
    let forbidden = true;
    const input = world();
    const { fake, run } = setup({
      read: async () => {
        if (forbidden) throw new ApiException(403, 'Forbidden', JSON.stringify({ kind: 'Status', message: 'secrets is forbidden: User "system:serviceaccount:x:y" cannot list resource "secrets"', code: 403 }), {});
        return input;
      },
    });
    const first = await run();
    expect(first).toEqual({ requeueAfterMs: 60_000 });
    const stalled = fake.rotation('webhooks')!.status!.conditions!.find((c) => c.type === 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'DiscoveryForbidden' });
    expect(stalled.message).toMatch(/cannot list resource "secrets".*secretTargets\.enabled/);
    forbidden = false;
    await run();
    expect(fake.rotation('webhooks')!.status!.phase).toBe('Planned');
  });

  it('another error is thrown to the work queue (retried with backoff), nothing written', async () => {
    const { fake, run } = setup({ read: async () => Promise.reject(new Error('connection reset')) });
    await expect(run()).rejects.toThrow('connection reset');
    expect(fake.writes).toEqual([]);
  });
});

describe('describeSecretPlan', () => {
  const target = (name: string, notAfter: string, caBundleCurrent = true) => ({
    secret: { namespace: 'web', name }, fronts: ['ValidatingWebhookConfiguration/x'], notAfter, ca: 'unknown', caKeyAvailable: false, caBundleCurrent, action: 'CannotRenew' as const, reason: 'r',
  });
  const now = new Date('2026-12-01T00:00:00Z');
  it.each([
    { name: 'nothing expired', targets: [target('a', '2027-01-01T00:00:00Z')], total: 1, want: /^planned 1 .*; earliest notAfter 2027-01-01T00:00:00Z \(web\/a\)$/ },
    { name: 'two expired, one stale caBundle', targets: [target('a', '2026-11-01T00:00:00Z', false), target('b', '2026-12-01T00:00:00Z'), target('c', '2027-01-01T00:00:00Z')], total: 3, want: /; 2 already expired; 1 with a caBundle that does not trust the certificate served$/ },
    { name: 'every listed one expired and more not listed: at least that many', targets: [target('a', '2026-11-01T00:00:00Z')], total: 5, want: /; 1\+ already expired$/ },
  ])('$name', ({ targets, total, want }) => {
    const message = describeSecretPlan({ total, renewInPlace: 0, regenerate: 0, leaveAlone: 0, cannotRenew: total, targets }, now);
    expect(message).toMatch(want);
  });
});
