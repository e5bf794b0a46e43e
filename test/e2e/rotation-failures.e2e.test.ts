// Issue 4's failure paths end to end with real agents over simulated RKE2 hosts:
// a node whose component keeps serving the old certificate rolls back and the
// rotation stalls naming the node and the step; the controller SIGKILLed mid-run
// (twice, with a node in flight each time) is replaced and the run finishes with
// no node done twice and never two servers in flight.
import { nodeRotationName } from '../../src/api/names.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedFleet } from '../../src/simulation/fleet.js';
import { changedPaths, snapshotTree, type TreeEntry } from '../../src/simulation/tree.js';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import type { SimulatedNode as ClusterNode } from '../cluster/nodes.js';
import { CONTROLLER_START_MS, ControllerProcess, waitFor } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { allIn, applyRotation, condition, deleteRotations, getJson, intervals, nodeRotations, overlappingServers, rke2Backups, runPhases, servedSerial } from './support/rotation.js';
import { inBlock } from '../../src/simulation/loopback.js';

const P = 'rotf-';
const LEASE = 'rotf-controller';
const nodes = JSON.parse(process.env.CERTROTATOR_E2E_NODES ?? '[]') as ClusterNode[];
const SERVERS = nodes.filter((n) => n.roles.includes('etcd') || n.roles.includes('controlplane')).map((n) => n.name).sort();
const WORKERS = nodes.filter((n) => !SERVERS.includes(n.name)).map((n) => n.name).sort();
// The agents' --node-ip: a range of this suite's own (see rotation.e2e.test.ts).
const hostIP = (ip: string): string => inBlock(ip, 40);
const ipOf = (name: string): string => hostIP(nodes.find((n) => n.name === name)!.ip);

let work: string;
let fleet: SimulatedFleet;
let controller: ControllerProcess;
let identities = 0;

const startController = (): ControllerProcess => new ControllerProcess(`rotf-${++identities}`, { leaseName: LEASE });
const debug = (): string => `${controller?.debug() ?? ''}\n${nodes.map((n) => `--- ${n.name}\n${fleet?.agentLog(n.name).split('\n').slice(-6).join('\n')}`).join('\n')}`;
const snapshot = (node: string): Promise<Map<string, TreeEntry>> => snapshotTree(fleet.hostRoot(node), (p) => /(^|\/)tls-\d+$/.test(p));
// An RKE2 restart re-issues the agent kubelet pairs on every start (by design), rollback restarts included.
const reissuedAtStart = /^var\/lib\/rancher\/rke2\/agent\/(client|serving)-kubelet\.(crt|key)$/;

async function nodePhase(rotation: string, node: string): Promise<string | undefined> {
  return (await nodeRotations(rotation)).find((n) => n.spec.nodeName === node)?.status?.phase;
}

async function waitAgentPaused(node: string, point: string): Promise<void> {
  await waitFor(`${node} paused at ${point}`, () => fleet.agentLog(node).includes(`paused at ${point}`), 60_000, debug);
}

beforeAll(async () => {
  await installCrds();
  work = mkdtempSync(join(tmpdir(), 'rotation-failures-e2e-'));
  fleet = await SimulatedFleet.create({ workDir: work, distribution: 'rke2', nodes: nodes.map((n) => ({ name: n.name, ip: hostIP(n.ip), roles: n.roles })), kubeconfig: process.env.KUBECONFIG! });
  await fleet.start();
  controller = startController();
  await waitFor('controller leading', () => controller.leading(), CONTROLLER_START_MS, () => controller.debug());
  await deleteRotations(P);
}, 180_000);

afterEach(async () => {
  for (const n of nodes) fleet.sim(n.name).faults.serveStale = false;
  await deleteRotations(P);
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await fleet?.stop();
  for (const name of fleet?.nodeNames() ?? []) expect(fleet.agentLog(name)).not.toContain('PRIVATE KEY');
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('a failing node', () => {
  it('rolls back (files restored) and stalls the rotation with a message naming the node and the step; later nodes never start', async () => {
    const before = new Map(await Promise.all(nodes.map(async (n) => [n.name, await snapshot(n.name)] as const)));
    const backupsBefore = rke2Backups(fleet.hostRoot('rke2-server-2'));
    fleet.sim('rke2-server-2').faults.serveStale = true;
    await applyRotation(`${P}stale`, { strategy: { nodeTimeout: '20s', maxUnavailable: 3 } });
    await kubectlOk(['wait', '--for=condition=Stalled', '--timeout=90s', `certrotation/${P}stale`]).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify((await getJson('certrotation', `${P}stale`))?.status, null, 1)}\n${debug()}`);
    });
    // A pass of the controller over the stalled run: anything that would (wrongly) start next has had its chance.
    await controller.reconciledAfterTouch(`${P}stale`);

    const r = await getJson('certrotation', `${P}stale`);
    expect(r.status.phase).toBe('Failed');
    const stalled = condition(r, 'Stalled');
    expect(stalled).toMatchObject({ status: 'True', reason: 'NodeRolledBack', observedGeneration: 1 });
    expect(stalled.message).toContain('node rke2-server-2 (etcd,controlplane) failed and was rolled back at step Verifying');
    expect(stalled.message).toMatch(new RegExp(`${ipOf('rke2-server-2').replaceAll('.', '\\.')}:\\d+ serves serial [0-9A-F]+, expected [0-9A-F]+`));
    expect(condition(r, 'Ready').status).toBe('False');
    expect(await runPhases(`${P}stale`, [...SERVERS, ...WORKERS])).toEqual({ ...allIn([...SERVERS, ...WORKERS], 'Pending'), 'rke2-server-1': 'Rotated', 'rke2-server-2': 'RolledBack' });
    const wide = (await kubectlOk(['get', 'certrotations', `${P}stale`, '-o', 'wide'])).trim().split('\n')[1]!;
    expect(wide).toMatch(new RegExp(`^${P}stale\\s+All\\s+Failed\\s+1/6\\s+.*rke2-server-2`));

    // Only the first two servers were ever instructed.
    const nrs = await nodeRotations(`${P}stale`);
    expect(nrs.map((n) => [n.spec.nodeName, n.status?.phase]).sort()).toEqual([['rke2-server-1', 'Rotated'], ['rke2-server-2', 'RolledBack']]);
    const failed = nrs.find((n) => n.spec.nodeName === 'rke2-server-2')!;
    expect(failed.status).toMatchObject({ step: 'Verifying' });
    expect(failed.status!.message).toMatch(/^node rke2-server-2: step Verifying failed: .*; rolled back from \/var\/lib\/rancher\/rke2\/server\/tls-\d+$/);
    expect(overlappingServers(intervals(nrs))).toEqual([]);

    // The failed node's files are byte for byte what they were; its backup stays for a person to see.
    const restored = changedPaths(before.get('rke2-server-2')!, await snapshot('rke2-server-2')).filter((p) => !reissuedAtStart.test(p));
    expect(restored).toEqual([]);
    expect(rke2Backups(fleet.hostRoot('rke2-server-2')).filter((b) => !backupsBefore.includes(b))).toHaveLength(1);
    // The nodes after it were never touched.
    for (const n of ['rke2-server-3', ...WORKERS]) expect([n, changedPaths(before.get(n)!, await snapshot(n))]).toEqual([n, []]);
    expect(changedPaths(before.get('rke2-server-1')!, await snapshot('rke2-server-1')).length).toBeGreaterThan(0);

    const events = await kubectlOk(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.name=${P}stale`, '-o', 'jsonpath={range .items[*]}{.type}|{.reason}|{.message}{"\\n"}{end}']);
    expect(events).toMatch(/Warning\|NodeRolledBack\|.*rke2-server-2/);
    expect(events).toMatch(/Warning\|RunFailed\|/);
    const notReady = await kubectl(['wait', '--for=condition=Ready', '--timeout=2s', `certrotation/${P}stale`]);
    expect(notReady.code).not.toBe(0);
  }, 150_000);
});

describe('the controller SIGKILLed mid-run', () => {
  it('is replaced by a new process that resumes the same run: every node once, never two servers in flight', async () => {
    const backupsBefore = new Map(nodes.map((n) => [n.name, rke2Backups(fleet.hostRoot(n.name))]));
    const servedBefore = new Map(await Promise.all(nodes.map(async (n) => [n.name, await servedSerial(ipOf(n.name), 10250)] as const)));
    // Hold rke2-server-2 and rke2-worker-1 in flight: their agents stop at a step until SIGKILLed and restarted.
    for (const n of ['rke2-server-2', 'rke2-worker-1']) {
      await fleet.stopAgent(n);
      await fleet.startAgent(n, { CERTROTATOR_TEST_PAUSE_AT: 'after-install' });
    }
    const name = `${P}kill`;
    await applyRotation(name, { strategy: { maxUnavailable: 2 } });

    // First kill: rke2-server-2 in flight.
    await waitAgentPaused('rke2-server-2', 'after-install');
    expect(await nodePhase(name, 'rke2-server-2')).toBe('Updating');
    const row = (await kubectlOk(['get', 'certrotations', name])).trim().split('\n')[1]!;
    expect(row).toMatch(new RegExp(`^${name}\\s+All\\s+Progressing\\s+1/6\\s+rke2-server-2\\s`));
    const first = controller;
    first.kill('SIGKILL');
    await waitFor('controller gone', () => first.exit !== undefined, 10_000);
    expect(first.exit).toEqual({ code: null, signal: 'SIGKILL' });
    // With no controller at all, the node's agent (itself restarted) finishes the node.
    await fleet.stopAgent('rke2-server-2', 'SIGKILL');
    await fleet.startAgent('rke2-server-2');
    await waitFor('server-2 Rotated', async () => (await nodePhase(name, 'rke2-server-2')) === 'Rotated', 60_000, debug);
    expect((await nodeRotations(name)).map((n) => n.spec.nodeName).sort()).toEqual(['rke2-server-1', 'rke2-server-2']);

    // A new controller process (new identity, same Lease) takes over once the dead leader's lease expires.
    controller = startController();
    await waitFor('new controller leading', () => controller.leading(), 40_000, debug);

    // Second kill: rke2-worker-1 in flight.
    await waitAgentPaused('rke2-worker-1', 'after-install');
    expect(await nodePhase(name, 'rke2-worker-1')).toBe('Updating');
    const second = controller;
    second.kill('SIGKILL');
    await waitFor('controller gone', () => second.exit !== undefined, 10_000);
    controller = startController();
    await waitFor('third controller leading', () => controller.leading(), 40_000, debug);
    await fleet.stopAgent('rke2-worker-1', 'SIGKILL');
    await fleet.startAgent('rke2-worker-1');

    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=90s', `certrotation/${name}`]).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify((await getJson('certrotation', name))?.status, null, 1)}\n${debug()}`);
    });
    const r = await getJson('certrotation', name);
    expect(r.status).toMatchObject({ phase: 'Succeeded', progress: '6/6', runGeneration: 1 });
    expect(await runPhases(name)).toEqual(allIn([...SERVERS, ...WORKERS], 'Rotated'));

    // One NodeRotation per node, of the one run.
    const nrs = await nodeRotations(name);
    expect(nrs.map((n) => n.metadata.name).sort()).toEqual([...SERVERS, ...WORKERS].map((n) => nodeRotationName(name, 1, n)).sort());
    for (const nr of nrs) expect([nr.spec.nodeName, nr.status?.phase]).toEqual([nr.spec.nodeName, 'Rotated']);
    for (const n of ['rke2-server-2', 'rke2-worker-1']) expect(nrs.find((x) => x.spec.nodeName === n)!.status!.message).toContain('resumed after an interruption');
    const iv = intervals(nrs);
    expect(overlappingServers(iv)).toEqual([]);
    expect(iv.slice(0, 3).map((i) => i.node)).toEqual(SERVERS);
    // No node done twice: one new backup each, one "rotated" report each in its agent's log.
    for (const n of nodes) {
      expect([n.name, rke2Backups(fleet.hostRoot(n.name)).filter((b) => !backupsBefore.get(n.name)!.includes(b)).length]).toEqual([n.name, 1]);
      const lines = fleet.agentLog(n.name).split('\n').filter((l) => l.includes(`${name}-g1-`));
      const count = (msg: RegExp): number => lines.filter((l) => msg.test(l)).length;
      expect([n.name, count(/"msg":"backed up to /), count(/"msg":"installing \d+ files"/), count(/"msg":"rotated \d+ files/)]).toEqual([n.name, 1, 1, 1]);
      expect([n.name, await servedSerial(ipOf(n.name), 10250)]).not.toEqual([n.name, servedBefore.get(n.name)]);
    }
  }, 200_000);
});
