// CertificateRotationPolicy against the real control plane: the controller CLI
// process, kubectl as the client, the inventory written as an agent writes it
// (a CertificateInventory object) and the node side of the rotation played by
// the contract agent. Windows are set in UTC around the moment the test runs.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { ContractAgent, CONTROLLER_START_MS, ControllerProcess, getRotation, waitFor } from './support/controller.js';
import { installCrds } from './support/crds.js';

const POLICY = 'pol-e2e';
const NODE = 'rke2-worker-1';
const LEASE = 'pol-controller';
const DAY = 86_400_000;
let controller: ControllerProcess;

/** HH:MM in UTC, `minutes` from now. */
const clock = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString().slice(11, 16);
const openWindow = () => ({ startTime: clock(-60), endTime: clock(60), timeZone: 'UTC' });
const closedWindow = () => ({ startTime: clock(120), endTime: clock(180), timeZone: 'UTC' });

async function writeInventory(kubeletExpiresInDays: number, scannedAt = new Date()): Promise<void> {
  const notAfter = new Date(Date.now() + kubeletExpiresInDays * DAY).toISOString().replace(/\.\d+Z$/, 'Z');
  const at = scannedAt.toISOString().replace(/\.\d+Z$/, 'Z');
  const status = {
    nodeName: NODE, distribution: 'rke2', roles: 'worker', scannedAt: at, writtenAt: at, files: 3, endpoints: 1, expired: 0, errors: 0,
    earliest: { service: 'kubelet', notAfter, daysLeft: kubeletExpiresInDays, path: '/var/lib/rancher/rke2/agent/serving-kubelet.crt' },
    services: [{ name: 'kubelet', notAfter, path: '/var/lib/rancher/rke2/agent/serving-kubelet.crt' }],
    staleEndpoints: [], unreadable: [],
  };
  const current = await kubectl(['get', 'certinv', NODE, '-o', 'json']);
  const metadata = current.code === 0 ? { name: NODE, resourceVersion: JSON.parse(current.stdout).metadata.resourceVersion } : { name: NODE };
  await kubectlOk([current.code === 0 ? 'replace' : 'create', '-f', '-'], { input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateInventory', metadata, status }) });
}

function applyPolicy(window: Record<string, string>): Promise<string> {
  return kubectlOk(['apply', '-f', '-'], {
    input: stringify({
      apiVersion: 'certrotator.io/v1alpha1',
      kind: 'CertificateRotationPolicy',
      metadata: { name: POLICY },
      spec: {
        renewBefore: '720h',
        template: { scope: 'Service', service: 'kubelet', strategy: { nodeSelector: { matchLabels: { 'kubernetes.io/hostname': NODE } }, nodeTimeout: '10m' } },
        window,
      },
    }),
  });
}

async function policy(): Promise<any> {
  return JSON.parse(await kubectlOk(['get', 'crpol', POLICY, '-o', 'json']));
}

const ready = (p: any) => p?.status?.conditions?.find((c: any) => c.type === 'Ready');

async function waitForReason(reason: string): Promise<any> {
  let last: any;
  await waitFor(
    `policy ${POLICY} Ready reason ${reason}`,
    async () => {
      last = await policy();
      return last.status?.observedGeneration === last.metadata.generation && ready(last)?.reason === reason;
    },
    30_000,
    () => `${JSON.stringify(last?.status)}\n${controller.debug()}`,
  );
  return last;
}

async function owned(): Promise<string[]> {
  return (await kubectlOk(['get', 'certificaterotations', '-l', `certrotator.io/policy=${POLICY}`, '-o', 'name'])).split('\n').filter(Boolean).map((n) => n.split('/')[1]!);
}

beforeAll(async () => {
  await installCrds();
  await kubectl(['delete', 'crpol', POLICY, '--ignore-not-found', '--wait=true']);
  await kubectl(['delete', 'certinv', NODE, '--ignore-not-found']);
  controller = new ControllerProcess('pol-a', { leaseName: LEASE });
  await waitFor('controller leading', () => controller.leading(), CONTROLLER_START_MS, () => controller.debug());
}, 150_000);

afterAll(async () => {
  // No policy may outlive the suite: a later suite's controller would act on it.
  await kubectl(['delete', 'crpol', POLICY, '--ignore-not-found', '--wait=true']);
  for (const name of await owned()) {
    const a = new ContractAgent(name);
    a.start();
    await kubectl(['delete', 'certificaterotation', name, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    await a.stop();
  }
  await kubectl(['delete', 'certinv', NODE, '--ignore-not-found']);
  await controller?.stop();
}, 120_000);

describe('CertificateRotationPolicy on the real control plane', () => {
  let rotation = '';
  let agent: ContractAgent | undefined;

  it('outside its window: creates nothing; status names the next expiry and when the window opens', async () => {
    await writeInventory(10);
    await applyPolicy(closedWindow());
    const p = await waitForReason('WaitingForWindow');
    expect(await owned()).toEqual([]);
    expect(p.status.nextExpiry).toMatchObject({ service: 'kubelet', node: NODE, path: '/var/lib/rancher/rke2/agent/serving-kubelet.crt' });
    expect(p.status.windowOpen).toBe(false);
    expect(Date.parse(p.status.nextWindow) - Date.now()).toBeGreaterThan(100 * 60_000);
    expect(ready(p).message).toMatch(/kubelet on rke2-worker-1 .* expires at .*, within renewBefore 720h; the next window opens at /);
    const table = (await kubectlOk(['get', 'crpol', POLICY])).trim().split('\n');
    expect(table[0]!.split(/\s{2,}/)).toEqual(['NAME', 'RENEW-BEFORE', 'NEXT-EXPIRY', 'NEXT-WINDOW', 'LAST', 'AGE']);
    expect(table[1]).toMatch(new RegExp(`^${POLICY}\\s+720h\\s+\\S+Z\\s+\\S+Z\\s+(<none>)?\\s+\\S+$`));
  });

  it('inside its window: exactly one rotation, owned by the policy, with the template; none more while it runs', async () => {
    await applyPolicy(openWindow());
    await waitFor('one rotation of the policy', async () => (await owned()).length > 0, 30_000, () => controller.debug());
    [rotation] = await owned();
    agent = new ContractAgent(rotation!, () => 'hold');
    agent.start();
    const r = await getRotation(rotation);
    expect(r.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'CertificateRotationPolicy', name: POLICY, controller: true })]);
    expect(r.spec).toMatchObject({ scope: 'Service', service: 'kubelet', mode: 'Apply', strategy: { nodeSelector: { matchLabels: { 'kubernetes.io/hostname': NODE } } } });
    await waitFor('the rotation progressing', async () => (await getRotation(rotation))?.status?.phase === 'Progressing', 30_000, () => controller.debug());
    // The controller had its chance at the running state: still one.
    await controller.reconciledAfterTouch(POLICY, { kind: 'crpol' });
    expect(await owned()).toEqual([rotation]);
    const p = await waitForReason('RotationRunning');
    expect(p.status.lastRotation).toMatchObject({ name: rotation, phase: 'Progressing' });
    expect((await kubectlOk(['get', 'crpol', POLICY, '--no-headers'])).trim()).toMatch(new RegExp(`\\s${rotation}\\s`));
  });

  it('the window closes mid-run: the rotation is paused (by the policy, said so); it opens again: resumed', async () => {
    await applyPolicy(closedWindow());
    await waitFor('the rotation paused by the policy', async () => {
      const r = await getRotation(rotation);
      return r?.spec?.paused === true && r.metadata.annotations?.['certrotator.io/paused-by-policy'] === 'true';
    }, 30_000, () => controller.debug());
    const events = await kubectlOk(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.name=${POLICY},reason=WindowClosed`, '-o', 'jsonpath={.items[*].message}']);
    expect(events).toContain(`paused CertificateRotation ${rotation}: the window closed`);
    await applyPolicy(openWindow());
    await waitFor('the rotation resumed', async () => {
      const r = await getRotation(rotation);
      return r?.spec?.paused === false && r.metadata.annotations?.['certrotator.io/paused-by-policy'] === undefined;
    }, 30_000, () => controller.debug());
  });

  it('after it succeeded: waits for the node’s fresh inventory, then is not due; still one rotation', async () => {
    agent!.release(NODE);
    await waitFor('the rotation succeeded', async () => (await getRotation(rotation))?.status?.phase === 'Succeeded', 30_000, () => controller.debug());
    await agent!.stop();
    let p = await waitForReason('WaitingForInventory');
    expect(ready(p).message).toContain(`waiting for the inventories of ${NODE}, scanned before ${rotation} rotated them`);
    await writeInventory(365);
    p = await waitForReason('NotDue');
    expect(await owned()).toEqual([rotation]);
    expect(p.status.lastRotation).toMatchObject({ name: rotation, phase: 'Succeeded' });
    expect(Date.parse(p.status.nextRotation)).toBeGreaterThan(Date.now() + 300 * DAY);
  });

  it('deleting the policy deletes its rotations (owner references, the garbage collector)', async () => {
    await kubectlOk(['delete', 'crpol', POLICY, '--wait=true']);
    await waitFor('the owned rotation gone', async () => (await getRotation(rotation)) === undefined, 60_000);
  });
});
