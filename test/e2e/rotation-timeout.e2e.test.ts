// A node that overruns nodeTimeout with real agents: the run stalls naming the
// node and the step, and, because its agent may still be restarting that node's
// components, no other rotation may start a server until that node's agent has
// reported: two etcd members restarting at once is how a 3-node etcd loses quorum.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedFleet } from '../../src/simulation/fleet.js';
import { runCommand } from '../cluster/command.js';
import { kubectlOk, kubectlPath } from '../cluster/kubectl.js';
import type { SimulatedNode as ClusterNode } from '../cluster/nodes.js';
import { ControllerProcess, waitFor } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { applyRotation, condition, deleteRotations, fleetDebug, getJson, intervals, nodeRotations, overlappingServers, startFleetAndController } from './support/rotation.js';
import { inBlock } from '../../src/simulation/loopback.js';

const P = 'rott-';
const nodes = JSON.parse(process.env.CERTROTATOR_E2E_NODES ?? '[]') as ClusterNode[];
const SERVERS = nodes.filter((n) => n.roles.includes('etcd') || n.roles.includes('controlplane')).sort((a, b) => a.name.localeCompare(b.name));
// The agents' --node-ip: a range of this suite's own (see rotation.e2e.test.ts).
const hostIP = (ip: string): string => inBlock(ip, 60);

let work: string;
let fleet: SimulatedFleet;
let controller: ControllerProcess;
const debug = (): string => fleetDebug(fleet, controller, SERVERS.map((n) => n.name));

beforeAll(async () => {
  await installCrds();
  work = mkdtempSync(join(tmpdir(), 'rotation-timeout-e2e-'));
  // Only the servers: the rotations here are etcd's, which only servers have.
  ({ fleet, controller } = await startFleetAndController({
    workDir: work, distribution: 'rke2', nodes: SERVERS.map((n) => ({ name: n.name, ip: hostIP(n.ip), roles: n.roles })), controllerId: 'rott-a', leaseName: 'rott-controller',
  }));
  await deleteRotations(P);
}, 180_000);

afterAll(async () => {
  try {
    if (controller) await deleteRotations(P);
  } finally {
    await controller?.stop();
    await fleet?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  }
}, 120_000);

describe('a node that overruns nodeTimeout', () => {
  it('stalls the run naming node and step; the next rotation waits until that node has reported, then runs', async () => {
    await fleet.stopAgent('rke2-server-2');
    await fleet.startAgent('rke2-server-2', { CERTROTATOR_TEST_PAUSE_AT: 'after-install' });
    await applyRotation(`${P}slow`, { scope: 'Service', service: 'etcd', strategy: { nodeTimeout: '8s' } });
    await kubectlOk(['wait', '--for=condition=Stalled', '--timeout=60s', `certrotation/${P}slow`]);
    const slow = await getJson('certrotation', `${P}slow`);
    expect(condition(slow, 'Stalled')).toMatchObject({ status: 'True', reason: 'NodeTimeout' });
    expect(condition(slow, 'Stalled').message).toMatch(/^node rke2-server-2 \(etcd,controlplane\) timed out at step Renewing: no result within spec\.strategy\.nodeTimeout \(8s\)/);
    expect(fleet.agentLog('rke2-server-2')).toContain('paused at after-install');

    // rke2-server-2's agent is still in the middle of it (its NodeRotation is Updating).
    await applyRotation(`${P}next`, { scope: 'Service', service: 'etcd' });
    await waitFor('the next rotation queued', async () => condition(await getJson('certrotation', `${P}next`), 'Reconciling')?.reason === 'Queued', 30_000);
    await controller.reconciledAfterTouch(`${P}next`);
    expect((await nodeRotations(`${P}next`)).map((n) => n.spec.nodeName)).toEqual([]);
    const next = await getJson('certrotation', `${P}next`);
    expect(condition(next, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Queued' });
    expect(condition(next, 'Reconciling').message).toContain('rke2-server-2');

    // The agent comes back and finishes the node; then the next rotation runs.
    await fleet.stopAgent('rke2-server-2', 'SIGKILL');
    await fleet.startAgent('rke2-server-2');
    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=90s', `certrotation/${P}next`]).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify((await getJson('certrotation', `${P}next`))?.status, null, 1)}\n${debug()}`);
    });
    const all = [...(await nodeRotations(`${P}slow`)), ...(await nodeRotations(`${P}next`))].filter((n) => n.status?.finishedAt);
    expect(all).toHaveLength(5);
    expect(overlappingServers(intervals(all))).toEqual([]);
  }, 150_000);

  it('an agent gone for good: the queued rotation names the node and the command that releases it; run as written, the next rotation runs', async () => {
    await fleet.stopAgent('rke2-server-3');
    await applyRotation(`${P}gone`, { scope: 'Service', service: 'etcd', strategy: { nodeTimeout: '8s' } });
    // rke2-server-1 and -2 rotate; rke2-server-3's agent never answers.
    await kubectlOk(['wait', '--for=condition=Stalled', '--timeout=90s', `certrotation/${P}gone`]);
    expect(condition(await getJson('certrotation', `${P}gone`), 'Stalled').message).toMatch(/^node rke2-server-3 .*the agent never reported/);
    await applyRotation(`${P}after`, { scope: 'Service', service: 'etcd' });
    let message = '';
    for (let i = 0; i < 40 && !message.includes('kubectl patch'); i++) {
      await new Promise((r) => setTimeout(r, 250));
      message = condition(await getJson('certrotation', `${P}after`), 'Reconciling')?.message ?? '';
    }
    expect(message).toMatch(/node rke2-server-3 since \S+Z still in flight with no final report from its agent/);
    const command = /release its node with: (kubectl patch noderotation .*?\}\}')/.exec(message)?.[1];
    expect(command).toBeDefined();
    // Exactly as the message says (kubectl from the test control plane, this cluster's kubeconfig).
    const run = await runCommand('sh', ['-c', command!.replace(/^kubectl /, `'${kubectlPath()}' --kubeconfig='${process.env.KUBECONFIG}' `)]);
    expect(`${run.code} ${run.stderr}`).toBe('0 ');
    await fleet.startAgent('rke2-server-3');
    await kubectlOk(['wait', '--for=condition=Ready', '--timeout=90s', `certrotation/${P}after`]).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify((await getJson('certrotation', `${P}after`))?.status, null, 1)}\n${debug()}`);
    });
    // The released node was never acted on for the old run.
    const released = (await nodeRotations(`${P}gone`)).find((n) => n.spec.nodeName === 'rke2-server-3')!;
    expect(released.status).toMatchObject({ phase: 'Failed', message: 'released by hand: agent gone' });
  }, 240_000);
});
