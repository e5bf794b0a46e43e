// The steps of one Secret-backed target, driven to their end against the
// in-memory cluster (fake-run-cluster.ts) and a real TLS server that "the
// pods" restart with the Secret's current pair. The certificates are made by
// openssl (test/secrets/webhook-pki.ts) and the renewed one is judged by
// `openssl verify`, not by the engine that made it.
import { afterAll, afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import type { SecretRunTarget } from '../../api/secret-targets.js';
import { b64, issueServing, makeCa, opensslVerify } from '../../../test/secrets/webhook-pki.js';
import { WebhookServer } from '../../../test/secrets/webhook-server.js';
import { normalSerial } from '../../pki/certfile.js';
import { decode } from './discovery.js';
import { FakeSecretRunCluster } from './fake-run-cluster.js';
import { SERVING_SERIAL_ANNOTATION } from './rollout.js';
import { stepTarget, type StepContext } from './target-steps.js';

const ca = makeCa({ cn: 'hooks-ca', days: 3650, back: 30 });
const otherCa = makeCa({ cn: 'hooks-ca', days: 3650, back: 30 });
const thirdCa = makeCa({ cn: 'third-ca', days: 3650, back: 30 });
const leaf = issueServing(ca, { cn: 'hook.hooks.svc', dns: ['hook', 'hook.hooks', 'hook.hooks.svc'], days: 90, back: 80 });
const OWNER = { name: 'renew-hooks', uid: '0c6f3e2a-1111-4c4c-9c9c-000000000001', generation: 3 };
const FRONT = 'ValidatingWebhookConfiguration/hook';
const ORIGINAL = { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem) };

const pending = (): SecretRunTarget => ({
  secret: { namespace: 'hooks', name: 'hook-tls' },
  workload: 'Deployment/hook',
  fronts: [FRONT],
  services: [{ namespace: 'hooks', name: 'hook' }],
  ca: { namespace: 'hooks', name: 'hook-ca', certKey: 'tls.crt', keyKey: 'tls.key' },
  phase: 'Pending',
});

const server = new WebhookServer('127.0.0.1');
let cluster: FakeSecretRunCluster;

async function servedFromSecret(port = 0): Promise<number> {
  const s = (await cluster.getSecret({ namespace: 'hooks', name: 'hook-tls' }))!;
  return server.serve({ certPem: decode(s.data!['tls.crt']), keyPem: decode(s.data!['tls.key']) }, port);
}

beforeEach(async () => {
  cluster = new FakeSecretRunCluster();
  cluster.putSecret({ metadata: { namespace: 'hooks', name: 'hook-tls', labels: { app: 'hook' } }, type: 'kubernetes.io/tls', data: { ...ORIGINAL } });
  cluster.putSecret({ metadata: { namespace: 'hooks', name: 'hook-ca' }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(ca.certPem), 'tls.key': b64(ca.keyPem) } });
  cluster.putDeployment('hooks', 'hook');
  cluster.putValidatingWebhook('hook', { namespace: 'hooks', name: 'hook' }, b64(ca.certPem));
  const port = await servedFromSecret();
  cluster.endpointList = [{ address: '127.0.0.1', port }];
  // The pods are replaced: the new ones load whatever the Secret holds now.
  cluster.onRolled = async () => {
    await servedFromSecret(port);
  };
});
afterEach(() => server.stop());
afterAll(() => server.stop());

/** Runs steps until the target ends, advancing a fake clock by what each waiting step asks. */
async function drive(start: SecretRunTarget, nodeTimeout = '30s', onFailure: StepContext['onFailure'] = 'Rollback'): Promise<{ target: SecretRunTarget; steps: string[] }> {
  let now = Date.parse('2026-12-04T10:00:00Z');
  let target = start;
  const steps: string[] = [];
  for (let i = 0; i < 100 && !['Rotated', 'RolledBack', 'Failed'].includes(target.phase); i++) {
    const ctx: StepContext = { cluster, owner: OWNER, now: new Date(now), nodeTimeout, onFailure };
    steps.push(target.step ?? 'Backup');
    const r = await stepTarget(target, ctx);
    target = r.target;
    now += r.waitMs ?? 10;
  }
  return { target, steps };
}

const secretData = async () => (await cluster.getSecret({ namespace: 'hooks', name: 'hook-tls' }))!.data!;
const backups = () => [...cluster.secrets.keys()].filter((k) => k.includes('-crbak-'));
const templateAnnotations = async () => (await cluster.getWorkload('hooks', 'Deployment/hook'))!.spec!.template!.metadata!.annotations ?? {};

describe('a Secret renewed in place, step by step', () => {
  test('backed up, renewed by the same CA, rolled, served, called through the API server, backup deleted', async () => {
    const { target, steps } = await drive(pending());
    expect(target.phase).toBe('Rotated');
    expect(steps).toEqual(['Backup', 'Renew', 'Trust', 'Roll', 'Roll', 'Rollout', 'Verify', 'Cleanup']);
    const data = await secretData();
    const renewed = decode(data['tls.crt']);
    expect(opensslVerify(ca.certPem, renewed)).toBe('OK');
    const cert = new X509Certificate(renewed);
    expect(normalSerial(cert.serialNumber)).toBe(target.serial);
    expect(target.serial).not.toBe(target.oldSerial);
    expect(target.oldSerial).toBe(normalSerial(new X509Certificate(leaf.certPem).serialNumber));
    expect(cert.subjectAltName).toBe(new X509Certificate(leaf.certPem).subjectAltName);
    // What the "new pods" serve is what the Secret holds now.
    expect(server.serving?.certPem).toBe(renewed);
    expect(backups()).toEqual([]);
    expect(cluster.writes).toEqual([
      expect.stringMatching(/^create hooks\/hook-tls-crbak-g3-/),
      'update hooks/hook-tls',
      'patch Deployment/hook hooks',
      expect.stringMatching(/^delete hooks\/hook-tls-crbak-g3-/),
    ]);
    expect(cluster.sent).toEqual([{ kind: 'DryRunCreateConfigMap', namespace: 'hooks', labels: {} }]);
    expect((await templateAnnotations())[SERVING_SERIAL_ANNOTATION]).toBe(target.serial);
    expect((await templateAnnotations())['certrotator.io/rotation']).toBe('renew-hooks/g3');
    expect(target.message).toMatch(/served by every endpoint; the API server called ValidatingWebhookConfiguration\/hook/);
  });

  test('a Renew step run twice (the status write after it was lost) renews once and adopts its own work', async () => {
    const ctx: StepContext = { cluster, owner: OWNER, now: new Date(), nodeTimeout: '30s' };
    const backedUp = (await stepTarget(pending(), ctx)).target;
    const first = (await stepTarget(backedUp, ctx)).target;
    const again = (await stepTarget(backedUp, ctx)).target;
    expect(again.serial).toBe(first.serial);
    expect(again.step).toBe('Trust');
    expect(cluster.writes.filter((w) => w.startsWith('update'))).toEqual(['update hooks/hook-tls']);
  });

  test('a rollout that never completes is rolled back: the old Secret, the old pod template, Stalled-worthy message', async () => {
    // Only a template without certrotator's serial rolls (the new pods never become available; undoing returns to the old ones).
    cluster.rolls = (a) => a[SERVING_SERIAL_ANNOTATION] === undefined;
    cluster.rollReads = 2; // the undo takes a few looks, as a real one does
    const { target, steps } = await drive(pending(), '10s');
    expect(target.phase).toBe('RolledBack');
    expect(target.failedStep).toBe('Rollout');
    expect(target.message).toMatch(/Rollout failed: the rollout did not finish within nodeTimeout 10s: Deployment hooks\/hook: 1 old replicas pending termination/);
    expect(target.message).toMatch(/restored from the backup; pod template put back/);
    expect(steps.slice(-5)).toEqual(['Restore', 'Undo', 'UndoRollout', 'UndoRollout', 'UndoRollout']);
    expect(await secretData()).toEqual(ORIGINAL);
    expect(await templateAnnotations()).toEqual({});
    // The backup stays until the rotation is deleted (its owner): the person may want it.
    expect(backups()).toHaveLength(1);
    expect(server.serving?.certPem).toBe(leaf.certPem);
  });

  test('onFailure Halt: the failed target is left as the failure left it, and the message names the backup', async () => {
    cluster.rolls = (a) => a[SERVING_SERIAL_ANNOTATION] === undefined;
    const { target } = await drive(pending(), '10s', 'Halt');
    expect(target.phase).toBe('Failed');
    expect(target.step).toBe('Rollout');
    expect(target.message).toMatch(/^Rollout failed: .*; onFailure is Halt, so it was left as it is: the original Secret is kept in Secret hooks\/hook-tls-crbak-g3-/);
    expect(await secretData()).not.toEqual(ORIGINAL);
    expect((await templateAnnotations())[SERVING_SERIAL_ANNOTATION]).toBe(target.serial);
    expect(backups()).toHaveLength(1);
  });

  test('the API server cannot call the renewed webhook: verification fails at nodeTimeout and everything is put back', async () => {
    cluster.probeError = 'HTTP 500: Internal error occurred: failed calling webhook "hook.example.com": tls: failed to verify certificate: x509: certificate signed by unknown authority';
    const { target } = await drive(pending(), '10s');
    expect(target.phase).toBe('RolledBack');
    expect(target.failedStep).toBe('Verify');
    expect(target.message).toMatch(/not verified within nodeTimeout 10s: ValidatingWebhookConfiguration\/hook: the API server could not call it: dry-run create of a ConfigMap in hooks: .*failed calling webhook/);
    expect(cluster.sent.length).toBeGreaterThan(1); // it looked again before giving up
    expect(await secretData()).toEqual(ORIGINAL);
    expect(server.serving?.certPem).toBe(leaf.certPem);
  });

  test('a caBundle without the CA gets it before the pods roll, and loses it again in a rollback', async () => {
    const front = cluster.fronts.get(FRONT)!;
    front.webhooks![0]!.clientConfig!.caBundle = b64(otherCa.certPem);
    cluster.probeError = 'failed calling webhook "hook.example.com": x509';
    const { target } = await drive(pending(), '6s');
    expect(target.caAddedTo).toEqual([FRONT]);
    expect(cluster.writes.indexOf(`patch ${FRONT}`)).toBeLessThan(cluster.writes.indexOf('patch Deployment/hook hooks'));
    expect(target.phase).toBe('RolledBack');
    expect(cluster.fronts.get(FRONT)!.webhooks![0]!.clientConfig!.caBundle).toBe(b64(otherCa.certPem));
  });

  test('a caBundle changed by another writer between read and patch: the test op refuses the patch, the step reads again and keeps both', async () => {
    const front = cluster.fronts.get(FRONT)!;
    front.webhooks![0]!.clientConfig!.caBundle = b64(otherCa.certPem);
    let raced = false;
    cluster.beforePatchFront = (f) => {
      if (raced) return;
      raced = true;
      f.webhooks![0]!.clientConfig!.caBundle = b64(otherCa.certPem + thirdCa.certPem);
    };
    const { target } = await drive(pending());
    expect(target.phase).toBe('Rotated');
    expect(raced).toBe(true);
    expect(decode(cluster.fronts.get(FRONT)!.webhooks![0]!.clientConfig!.caBundle)).toBe(otherCa.certPem + thirdCa.certPem + new X509Certificate(ca.certPem).toString());
  });

  test("a backup name taken by someone else's Secret stops at Backup with nothing changed", async () => {
    const ctx: StepContext = { cluster, owner: OWNER, now: new Date(), nodeTimeout: '30s' };
    await stepTarget(pending(), ctx);
    const name = backups()[0]!;
    cluster.secrets.delete(name);
    const [namespace, secretName] = name.split('/') as [string, string];
    cluster.putSecret({ metadata: { namespace, name: secretName }, data: {} });
    cluster.writes.length = 0;
    const { target } = await drive(pending());
    expect(target.phase).toBe('RolledBack');
    expect(target.failedStep).toBe('Backup');
    expect(target.message).toMatch(/exists and is not this rotation's backup; nothing was changed/);
    expect(cluster.writes).toEqual([]);
    expect(await secretData()).toEqual(ORIGINAL);
  });

  test('a rollback whose backup is gone says what to restore by hand', async () => {
    cluster.rolls = (a) => a[SERVING_SERIAL_ANNOTATION] === undefined;
    // The backup disappears when the (never finishing) rollout starts: deleted at the Roll patch.
    const roll = cluster.patchTemplateAnnotations.bind(cluster);
    cluster.patchTemplateAnnotations = async (...args) => {
      await roll(...args);
      for (const b of backups()) cluster.secrets.delete(b);
    };
    const { target } = await drive(pending(), '6s');
    expect(target.phase).toBe('Failed');
    expect(target.step).toBe('Restore');
    expect(target.message).toMatch(/the rollback failed at Restore: its backup hook-tls-crbak-g3-\w+ is gone\. Restore by hand/);
  });
});

describe('a Secret regenerated by its owner (Regenerate), step by step', () => {
  const MWC = 'MutatingWebhookConfiguration/hook';
  const regenerate = (): SecretRunTarget => ({ ...pending(), action: 'Regenerate', fronts: [MWC, FRONT], removes: [MWC] });
  const DUE_DAYS = 90;

  /**
   * The owner, as rancher-webhook behaves (dynamiclistener): a running pod writes
   * its Secret back from memory when it is deleted; a starting pod makes a CA
   * only when the CA Secret is absent, a new pair when the Secret is absent or
   * its certificate expires within 90 days, and registers the mutating
   * configuration with its CA as caBundle.
   */
  function ownerLike(opts: { reregisters: boolean }) {
    let inMemory: Record<string, string> = ORIGINAL;
    const deleteSecret = cluster.deleteSecret.bind(cluster);
    cluster.deleteSecret = async (ref) => {
      await deleteSecret(ref);
      if (ref.name === 'hook-tls') cluster.putSecret({ metadata: { namespace: 'hooks', name: 'hook-tls' }, type: 'kubernetes.io/tls', data: { ...inMemory } });
    };
    cluster.onRolled = async () => {
      let caSecret = await cluster.getSecret({ namespace: 'hooks', name: 'hook-ca' });
      if (!caSecret) {
        const fresh = makeCa({ cn: 'hooks-ca', days: 3650 });
        cluster.putSecret({ metadata: { namespace: 'hooks', name: 'hook-ca' }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(fresh.certPem), 'tls.key': b64(fresh.keyPem) } });
        caSecret = (await cluster.getSecret({ namespace: 'hooks', name: 'hook-ca' }))!;
      }
      const caPair = { certPem: decode(caSecret.data!['tls.crt']), keyPem: decode(caSecret.data!['tls.key']) };
      const current = await cluster.getSecret({ namespace: 'hooks', name: 'hook-tls' });
      const due = !current || Date.parse(new X509Certificate(decode(current.data!['tls.crt'])).validTo) - Date.now() < DUE_DAYS * 86_400_000;
      if (due) {
        const pair = issueServing(caPair, { cn: 'hook.hooks.svc', dns: ['hook.hooks.svc'], days: 3650 });
        const data = { 'tls.crt': b64(pair.certPem + caPair.certPem), 'tls.key': b64(pair.keyPem) };
        if (current) await cluster.updateSecret({ ...current, data });
        else cluster.putSecret({ metadata: { namespace: 'hooks', name: 'hook-tls' }, type: 'kubernetes.io/tls', data });
      }
      inMemory = (await cluster.getSecret({ namespace: 'hooks', name: 'hook-tls' }))!.data!;
      await servedFromSecret(cluster.endpointList[0]!.port);
      if (opts.reregisters) mutating(b64(caPair.certPem));
    };
  }

  function mutating(caBundle: string) {
    cluster.fronts.set(MWC, { ...structuredClone(cluster.fronts.get(FRONT)!), kind: 'MutatingWebhookConfiguration', metadata: { name: 'hook', labels: { owner: 'hook' } } } as never);
    cluster.fronts.get(MWC)!.webhooks![0]!.clientConfig!.caBundle = caBundle;
  }

  beforeEach(() => mutating(b64(ca.certPem)));

  test('backed up (Secret, CA Secret, the mutating configuration), deleted, rolled; the owner re-issues from the same CA and registers again; verified; backups deleted', async () => {
    ownerLike({ reregisters: true });
    const { target, steps } = await drive(regenerate());
    expect(target.phase).toBe('Rotated');
    expect(steps).toEqual(['Backup', 'Remove', 'Roll', 'Roll', 'Rollout', 'Reissued', 'Trust', 'Verify', 'Cleanup']);
    const served = decode((await secretData())['tls.crt']);
    expect(opensslVerify(ca.certPem, served)).toBe('OK');
    expect(server.serving?.certPem).toBe(served);
    expect(target.serial).toBe(normalSerial(new X509Certificate(served).serialNumber));
    expect(target.serial).not.toBe(target.oldSerial);
    expect(target.message).toMatch(/served by every endpoint; the API server called MutatingWebhookConfiguration\/hook .*ValidatingWebhookConfiguration\/hook/);
    expect(cluster.writes).toEqual([
      expect.stringMatching(/^create hooks\/hook-tls-crbak-g3-/),
      expect.stringMatching(/^create hooks\/hook-ca-crbak-g3-/),
      `delete ${MWC}`,
      'delete hooks/hook-tls',
      'patch Deployment/hook hooks',
      'update hooks/hook-tls',
      expect.stringMatching(/^delete hooks\/hook-tls-crbak-g3-/),
      expect.stringMatching(/^delete hooks\/hook-ca-crbak-g3-/),
    ]);
    expect(backups()).toEqual([]);
    expect((await templateAnnotations())[SERVING_SERIAL_ANNOTATION]).toBe(`regenerate-${target.oldSerial}`);
  });

  test('the owner makes a new CA (its CA Secret was gone): as soon as the first new pod wrote its pair, the front it does not register trusts the new CA beside the old one; once verified the old one goes', async () => {
    cluster.secrets.delete('hooks/hook-ca');
    ownerLike({ reregisters: true });
    // The owner's first new pod starts while the old one still serves; the rollout ends two looks later.
    cluster.onRollStarted = cluster.onRolled;
    let rolledAt = -1;
    cluster.onRolled = () => {
      rolledAt = cluster.writes.length;
    };
    cluster.rollReads = 2;
    const { target } = await drive(regenerate());
    expect(target.phase).toBe('Rotated');
    const newCa = decode((await cluster.getSecret({ namespace: 'hooks', name: 'hook-ca' }))!.data!['tls.crt']);
    expect(newCa).not.toBe(ca.certPem);
    expect(opensslVerify(newCa, decode((await secretData())['tls.crt']))).toBe('OK');
    expect(target.caAddedTo).toEqual([FRONT]);
    // Both CAs while old and new pods served: the new one was added before the rollout ended.
    const trusted = cluster.writes.indexOf(`patch ${FRONT}`);
    expect(trusted).toBeGreaterThan(cluster.writes.indexOf('patch Deployment/hook hooks'));
    expect(trusted).toBeLessThan(rolledAt);
    // Verified: the old CA left the caBundle; the owner's own configuration holds its new CA.
    expect(decode(cluster.fronts.get(FRONT)!.webhooks![0]!.clientConfig!.caBundle)).toBe(new X509Certificate(newCa).toString());
    expect(decode(cluster.fronts.get(MWC)!.webhooks![0]!.clientConfig!.caBundle)).toBe(newCa);
    expect(target.message).toMatch(/; the old CA dropped from the caBundle of ValidatingWebhookConfiguration\/hook; backup deleted$/);
  });

  test('an owner that reloads the same pair and never registers again: Reissued fails at nodeTimeout; the Secret, CA Secret and mutating configuration are put back and the pods rolled back', async () => {
    // Far from expiry: the starting pod keeps what the running one wrote back from memory.
    const farLeaf = issueServing(ca, { cn: 'hook.hooks.svc', dns: ['hook', 'hook.hooks', 'hook.hooks.svc'], days: 365 });
    const far = { 'tls.crt': b64(farLeaf.certPem), 'tls.key': b64(farLeaf.keyPem) };
    cluster.putSecret({ metadata: { namespace: 'hooks', name: 'hook-tls', labels: { app: 'hook' } }, type: 'kubernetes.io/tls', data: far });
    ownerLike({ reregisters: false });
    const deleteSecret = cluster.deleteSecret.bind(cluster);
    cluster.deleteSecret = async (ref) => {
      await deleteSecret(ref);
      if (ref.name === 'hook-tls') cluster.putSecret({ metadata: { namespace: 'hooks', name: 'hook-tls' }, type: 'kubernetes.io/tls', data: far });
    };
    const mwcBefore = structuredClone(cluster.fronts.get(MWC));
    const { target, steps } = await drive(regenerate(), '10s');
    expect(target.phase).toBe('RolledBack');
    expect(target.failedStep).toBe('Reissued');
    expect(target.message).toMatch(/^Reissued failed: not regenerated within nodeTimeout 10s: Secret hooks\/hook-tls holds the old certificate again \(serial \w+\): the owner wrote back what it had loaded/);
    expect(target.message).toMatch(/Secret hooks\/hook-tls, its CA Secret hooks\/hook-ca, MutatingWebhookConfiguration\/hook restored from the backup; pod template put back/);
    expect(steps.slice(-3)).toEqual(['Restore', 'Undo', 'UndoRollout']);
    expect(cluster.fronts.get(MWC)).toEqual(mwcBefore);
    expect(await secretData()).toEqual(far);
    expect(await templateAnnotations()).toEqual({});
    expect(backups()).toHaveLength(2);
  });
});
