// The controller against the real control plane, with the agent's side of the
// NodeRotation contract played by the test through kubectl (support/controller.ts).
// Everything is applied and read with kubectl, as a person would.
import { nodeRotationName } from '../../src/api/names.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { ContractAgent, CONTROLLER_START_MS, ControllerProcess, getRotation, nodeRotationsOf, waitFor } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { allIn, runPhases } from './support/rotation.js';

const P = 'cc-';
const LEASE = 'cc-controller';
const SERVERS = ['rke2-server-1', 'rke2-server-2', 'rke2-server-3'];
const WORKERS = ['rke2-worker-1', 'rke2-worker-2', 'rke2-worker-3'];

let controller: ControllerProcess;
const agents: ContractAgent[] = [];

function apply(name: string, spec: Record<string, unknown>): Promise<string> {
  return kubectlOk(['apply', '-f', '-'], {
    input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: P + name }, spec }),
  });
}

function agent(name: string, ...rest: ConstructorParameters<typeof ContractAgent> extends [string, ...infer R] ? R : never): ContractAgent {
  const a = new ContractAgent(P + name, ...rest);
  agents.push(a);
  a.start();
  return a;
}

async function deleteMine(): Promise<void> {
  const names = (await kubectlOk(['get', 'certificaterotations', '-o', 'name'])).split('\n').filter((n) => n.includes(`/${P}`));
  if (names.length > 0) await kubectlOk(['delete', '--wait=true', '--timeout=60s', ...names]);
}

function cond(obj: any, type: string): any {
  return obj?.status?.conditions?.find((c: any) => c.type === type);
}

beforeAll(async () => {
  await installCrds();
  controller = new ControllerProcess('cc-a', { leaseName: LEASE });
  await waitFor('controller leading', () => controller.leading(), CONTROLLER_START_MS, () => controller.debug());
  await deleteMine();
}, 150_000);

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => { a.release('*'); return a.stop(); }));
  // A fresh agent finishes whatever is still in flight, so the finalizers can let go.
  for (const name of (await kubectlOk(['get', 'certificaterotations', '-o', 'name'])).split('\n').filter((n) => n.includes(`/${P}`))) {
    const a = new ContractAgent(name.split('/')[1]!);
    a.start();
    await kubectlOk(['delete', '--wait=true', '--timeout=60s', name]);
    await a.stop();
  }
}, 120_000);

afterAll(async () => {
  await controller?.stop();
}, 30_000);

describe('controller with the NodeRotation contract played by the test', () => {
  it('rotates all services on 3 servers then 3 workers; kubectl wait Ready returns; columns and events show it', async () => {
    const a = agent('all', () => 'rotate');
    await apply('all', { strategy: { maxUnavailable: 2 } });
    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=90s', `certificaterotation/${P}all`]);
    const r = await getRotation(`${P}all`);
    expect(r.status).toMatchObject({ phase: 'Succeeded', progress: '6/6', distribution: 'rke2', observedGeneration: 1, runGeneration: 1 });
    expect(await runPhases(`${P}all`)).toEqual(allIn([...SERVERS, ...WORKERS], 'Rotated'));
    expect(r.status.nodes).toEqual([]);
    expect(cond(r, 'ServersRotated').status).toBe('True');
    expect(cond(r, 'WorkersRestarted').status).toBe('True');
    expect(cond(r, 'Stalled').status).toBe('False');
    expect(a.order.slice(0, 3)).toEqual(SERVERS);
    expect(a.violations).toEqual([]);
    expect(a.duplicates()).toEqual([]);

    const table = await kubectlOk(['get', 'certrotations', `${P}all`, '-o', 'wide']);
    const [header, row] = table.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAME', 'SCOPE', 'SERVICE', 'PHASE', 'PROGRESS', 'CURRENT', 'AGE', 'DISTRIBUTION', 'MESSAGE']);
    expect(row).toMatch(new RegExp(`^${P}all\\s+All\\s+Succeeded\\s+6/6\\s+\\S+\\s+rke2\\s+rotated 6/6 node\\(s\\)`));

    const events = await kubectlOk(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.name=${P}all`, '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}']);
    for (const reason of ['RunStarted', 'NodeStarted', 'NodeRotated', 'RunSucceeded']) expect(events).toContain(reason);
  }, 120_000);

  it('a single-service rotation touches only the nodes the service is relevant to', async () => {
    agent('sched', () => 'rotate');
    await apply('sched', { scope: 'Service', service: 'scheduler' });
    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=60s', `certificaterotation/${P}sched`]);
    const nrs = await nodeRotationsOf(`${P}sched`);
    expect(nrs.map((n) => n.spec.nodeName).sort()).toEqual(SERVERS);
    expect(nrs.every((n) => n.spec.scope === 'Service' && n.spec.services.join() === 'scheduler')).toBe(true);
    const r = await getRotation(`${P}sched`);
    expect(cond(r, 'WorkersRestarted')).toMatchObject({ status: 'True', reason: 'NoneInPlan' });
  }, 90_000);

  it('a node that rolls back stops the run: Stalled=True names the node and the step; nothing else starts', async () => {
    const a = agent('fail', (nr) =>
      nr.spec.nodeName === 'rke2-server-2' ? { phase: 'RolledBack', step: 'Verifying', message: 'kube-apiserver kept serving the old serial' } : 'rotate',
    );
    await apply('fail', {});
    await kubectlOk(['wait', '--for=condition=Stalled', '--timeout=60s', `certificaterotation/${P}fail`]);
    // The controller has reconciled the stalled run once more: had it anything left to start, it would have.
    await controller.reconciledAfterTouch(`${P}fail`);
    const r = await getRotation(`${P}fail`);
    expect(r.status.phase).toBe('Failed');
    const stalled = cond(r, 'Stalled');
    expect(stalled.reason).toBe('NodeRolledBack');
    expect(stalled.message).toContain('node rke2-server-2 (etcd,controlplane) failed and was rolled back at step Verifying');
    expect(stalled.message).toContain('kube-apiserver kept serving the old serial');
    expect(cond(r, 'Ready').status).toBe('False');
    expect(a.order).toEqual(['rke2-server-1', 'rke2-server-2']);
    const res = await kubectl(['wait', '--for=condition=Ready', '--timeout=2s', `certificaterotation/${P}fail`]);
    expect(res.code).not.toBe(0);
  }, 90_000);

  it('pause stops starting nodes (the one in flight finishes); resume finishes the same run', async () => {
    const a = agent('pause', () => 'hold');
    await apply('pause', {});
    await waitFor('server-1 in flight', () => a.firstSeen.has('rke2-server-1'), 30_000);
    await kubectlOk(['patch', 'certificaterotation', `${P}pause`, '--type=merge', '-p', '{"spec":{"paused":true}}']);
    a.release('rke2-server-1');
    // Paused can be written while server-1 is still in flight: wait for its report to be counted too
    // (the facts this test is about), then for a pass over that state, and only then say nothing else started.
    await waitFor('Paused, with server-1 finished and counted', async () => {
      const st = (await getRotation(`${P}pause`))?.status;
      return st?.phase === 'Paused' && st?.progress === '1/6';
    }, 30_000);
    await controller.reconciledAfterTouch(`${P}pause`);
    expect(a.order).toEqual(['rke2-server-1']);
    const paused = await getRotation(`${P}pause`);
    expect(paused.status).toMatchObject({ phase: 'Paused', progress: '1/6', observedGeneration: 2 });
    expect(cond(paused, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Paused' });
    for (const n of [...SERVERS, ...WORKERS]) a.release(n);
    await kubectlOk(['patch', 'certificaterotation', `${P}pause`, '--type=merge', '-p', '{"spec":{"paused":false}}']);
    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=60s', `certificaterotation/${P}pause`]);
    const done = await getRotation(`${P}pause`);
    expect(done.status).toMatchObject({ phase: 'Succeeded', runGeneration: 1, observedGeneration: 3 });
    expect(a.duplicates()).toEqual([]);
  }, 120_000);

  it('a second rotation waits with Reconciling=True reason Queued, then runs', async () => {
    const first = agent('q1', () => 'hold');
    await apply('q1', { scope: 'Service', service: 'etcd' });
    await waitFor('q1 started', () => first.firstSeen.size > 0, 30_000);
    const second = agent('q2', () => 'rotate');
    await apply('q2', { scope: 'Service', service: 'scheduler' });
    await waitFor('q2 queued', async () => cond(await getRotation(`${P}q2`), 'Reconciling')?.reason === 'Queued', 30_000);
    const q = await getRotation(`${P}q2`);
    expect(cond(q, 'Reconciling').message).toContain(`${P}q1`);
    expect(q.status.phase).toBe('Pending');
    expect(second.firstSeen.size).toBe(0);
    for (const n of SERVERS) first.release(n);
    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=60s', `certificaterotation/${P}q1`]);
    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=60s', `certificaterotation/${P}q2`]);
    // Never overlapping: q2's first node appeared after q1's last node had sent its
    // final report. Not after that write returned: a clean-clone run saw q2's node
    // 179 ms before q1's kubectl patch returned, the controller having acted on the
    // report in between. (q1's nodes are held until after q2 was seen Queued, above,
    // so a controller that started q2 early would be seen long before this.)
    expect(first.reportSentAt.size).toBe(first.firstSeen.size);
    expect(Math.min(...second.firstSeen.values())).toBeGreaterThan(Math.max(...first.reportSentAt.values()));
  }, 120_000);

  it('deleting mid-run waits for the node in flight, then leaves no NodeRotation behind', async () => {
    const a = agent('del', () => 'hold');
    await apply('del', {});
    await waitFor('server-1 in flight', () => a.firstSeen.has('rke2-server-1'), 30_000);
    await kubectlOk(['delete', '--wait=false', 'certificaterotation', `${P}del`]);
    await waitFor('the deletion held for the node in flight', async () => cond(await getRotation(`${P}del`), 'Reconciling')?.reason === 'FinishingInFlight', 30_000);
    await controller.reconciledAfterTouch(`${P}del`);
    const held = await getRotation(`${P}del`);
    expect(held?.metadata.deletionTimestamp).toBeDefined();
    expect(cond(held, 'Reconciling')).toMatchObject({ reason: 'FinishingInFlight' });
    expect(cond(held, 'Reconciling').message).toContain('rke2-server-1');
    expect(await nodeRotationsOf(`${P}del`)).toHaveLength(1);
    a.release('rke2-server-1');
    await waitFor('rotation gone', async () => (await getRotation(`${P}del`)) === undefined, 30_000);
    expect(await nodeRotationsOf(`${P}del`)).toHaveLength(0);
    expect(a.order).toEqual(['rke2-server-1']);
  }, 90_000);

  it('Plan mode publishes the ordered plan and the earliest expiry the agents read; nothing but read-only checks is created', async () => {
    const a = new ContractAgent(`${P}plan`);
    a.start();
    try {
      await apply('plan', { mode: 'Plan', strategy: { maxUnavailable: 3 } });
      await kubectlOk(['wait', '--for=condition=Ready', '--timeout=60s', `certificaterotation/${P}plan`]);
      const r = await getRotation(`${P}plan`);
      expect(r.status).toMatchObject({ phase: 'Planned', progress: '6/6' });
      expect(r.status.plan.nodes.map((n: any) => [n.name, n.batch])).toEqual([
        ['rke2-server-1', 0], ['rke2-server-2', 1], ['rke2-server-3', 2], ['rke2-worker-1', 3], ['rke2-worker-2', 3], ['rke2-worker-3', 3],
      ]);
      // rke2-server-1's certificates expire first (the contract agent's dates); every service has its earliest.
      const earliest = r.status.plan.earliestExpiry;
      expect(earliest[0]).toMatchObject({ notAfter: '2027-01-02T00:00:00Z', node: 'rke2-server-1' });
      expect(new Set(earliest.map((e: any) => e.service))).toEqual(new Set(r.status.plan.nodes.flatMap((n: any) => n.services)));
      expect(r.status.plan.nodes[3].files).toEqual(r.status.plan.nodes[3].services.map((s: string) => `/contract/rke2-worker-1/${s}.crt`));
      expect(cond(r, 'Ready').message).toContain('earliest notAfter 2027-01-02T00:00:00Z');
      const created = await nodeRotationsOf(`${P}plan`);
      expect(created).toHaveLength(6);
      expect(created.every((nr) => nr.spec.action === 'Check' && nr.status?.phase === 'Checked')).toBe(true);
      expect(a.order).toEqual([]); // nothing was asked to rotate
    } finally {
      await a.stop();
    }
  }, 90_000);

  it('an RKE service on the detected RKE2 cluster stalls with a reason naming it', async () => {
    await apply('wrong', { scope: 'Service', service: 'kube-apiserver' });
    await kubectlOk(['wait', '--for=condition=Stalled', '--timeout=30s', `certificaterotation/${P}wrong`]);
    const r = await getRotation(`${P}wrong`);
    expect(cond(r, 'Stalled')).toMatchObject({ reason: 'ServiceNotInDistribution', observedGeneration: 1 });
    expect(cond(r, 'Stalled').message).toContain('"kube-apiserver" is not a service of rke2');
  }, 60_000);

  it('serves /healthz, /readyz and /metrics with rotation and write counters, counting a run of its own', async () => {
    const port = controller.port!;
    for (const path of ['/healthz', '/readyz']) expect((await fetch(`http://127.0.0.1:${port}${path}`)).status).toBe(200);
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (text: string, series: RegExp): number => Number(series.exec(text)?.[1] ?? 0);
    const SUCCEEDED = /^certrotator_rotations_total\{result="succeeded"\} (\d+)$/m;
    const CREATES = /^certrotator_controller_api_writes_total\{verb="create",resource="noderotations"\} (\d+)$/m;
    const before = await scrape();
    agent('metrics', () => 'rotate');
    await apply('metrics', { scope: 'Service', service: 'scheduler' });
    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=60s', `certificaterotation/${P}metrics`]);
    const after = await scrape();
    // This run: one more succeeded rotation, one NodeRotation created per server (the scheduler runs on servers).
    expect(value(after, SUCCEEDED) - value(before, SUCCEEDED)).toBe(1);
    expect(value(after, CREATES) - value(before, CREATES)).toBe(SERVERS.length);
    expect(after).toMatch(/certrotator_leader\{lease="cc-controller"\} 1/);
  }, 90_000);
});

describe('restarts', () => {
  it('leader SIGKILLed mid-run: the standby takes over within 20 s and finishes; no node twice, never two servers in flight', async () => {
    const standby = new ControllerProcess('cc-b', { leaseName: LEASE });
    try {
      await waitFor('standby synced', () => standby.lines.some((l) => l.msg === 'informer synced'), 30_000, () => standby.debug());
      const a = agent('kill', () => 'rotate', 1500);
      await apply('kill', { strategy: { maxUnavailable: 2 } });
      await waitFor('server-2 in flight', () => a.firstSeen.has('rke2-server-2'), 60_000);
      const killedAt = Date.now();
      controller.kill('SIGKILL');
      await waitFor('standby leads', () => standby.leading(), 25_000, () => standby.debug());
      expect(Date.now() - killedAt).toBeLessThan(20_000);
      await kubectlOk(['wait', '--for=condition=Ready', '--timeout=90s', `certificaterotation/${P}kill`]);
      expect(a.violations).toEqual([]);
      expect(a.duplicates()).toEqual([]);
      expect(a.order).toEqual([...SERVERS, ...WORKERS].slice(0, a.order.length));
      expect(a.order.slice(0, 3)).toEqual(SERVERS);
      expect(a.order).toHaveLength(6);
      // The run is the same one: generation-1 names, one per node.
      expect((await nodeRotationsOf(`${P}kill`)).map((n) => n.metadata.name).sort()).toEqual([...SERVERS, ...WORKERS].map((n) => nodeRotationName(`${P}kill`, 1, n)).sort());
    } finally {
      // The standby is the leader now: it is the one the other tests' cleanup needs.
      controller = standby;
    }
  }, 150_000);
});
