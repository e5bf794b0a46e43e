// The agent's guarantees on a real host tree with the simulated distribution:
// one runID is rotated once however often it is handed over (an agent that
// restarts after finishing must only report), and onFailure Halt leaves a failed
// node exactly as the failure left it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeRotationSpec } from '../api/noderotation.js';
import { NodeRotationError } from '../host/rotation.js';
import { rke2Server, type FixtureNode } from '../simulation/fixtures.js';
import { SimulationExecutor } from '../simulation/executor.js';
import { SimulatedNode } from '../simulation/node.js';
import { changedPaths, copyDir, snapshotTree } from '../simulation/tree.js';
import { CatalogHostRunner } from './host-runner.js';
import { runIp } from '../simulation/loopback.js';

const S = 'var/lib/rancher/rke2/server/tls';
let work: string;
let fixture: FixtureNode;
let ip = 20;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-agent-runner-'));
  fixture = await rke2Server(join(work, 'fixture'), { nodeName: 'server-1', nodeIP: runIp(210, 1) });
}, 60_000);
afterAll(() => fs.rm(work, { recursive: true, force: true }));

function spec(over: Partial<NodeRotationSpec> = {}): NodeRotationSpec {
  return {
    rotation: 'r', generation: 1, runID: 'uid-1-g1', nodeName: 'server-1', role: 'etcd,controlplane', action: 'Rotate', distribution: 'rke2',
    scope: 'Service', services: ['api-server'], restart: true, timeout: '20s', onFailure: 'Rollback', ...over,
  };
}

async function node(): Promise<{ root: string; sim: SimulatedNode; runner: CatalogHostRunner }> {
  const root = join(work, `node-${ip}`);
  await copyDir(fixture.root, root);
  const address = runIp(211, ip++);
  const sim = new SimulatedNode({ ...fixture, root }, { address });
  await sim.start();
  const runner = new CatalogHostRunner({ hostRoot: root, nodeIP: address, loopbackAddress: address, executor: new SimulationExecutor(sim.controlUrl) });
  return { root, sim, runner };
}

describe('CatalogHostRunner', () => {
  it('checks read only: every certificate of the asked services with its serial and notAfter, nothing on the host changes', async () => {
    const root = join(work, 'check');
    await copyDir(fixture.root, root);
    const runner = new CatalogHostRunner({ hostRoot: root, nodeIP: runIp(212, 1), executor: {} as SimulationExecutor });
    const before = await snapshotTree(root);
    const reports = await runner.check(spec({ action: 'Check', scope: 'All', services: ['api-server', 'etcd'] }));
    expect(changedPaths(before, await snapshotTree(root))).toEqual([]);
    expect(new Set(reports.map((r) => r.service))).toEqual(new Set(['api-server', 'etcd']));
    const serving = reports.find((r) => r.path === `${S}/serving-kube-apiserver.crt`);
    expect(serving).toMatchObject({ service: 'api-server', serial: expect.stringMatching(/^[0-9A-F]+$/) });
    expect(Date.parse(serving!.notAfter!)).toBeGreaterThan(Date.now());
    expect(reports.every((r) => r.error === undefined)).toBe(true);

    await fs.rm(join(root, S, 'client-kube-apiserver.crt'));
    const missing = await runner.check(spec({ action: 'Check', services: ['api-server'] }));
    // A missing file is a finding, reported, not an exception.
    expect(missing.filter((r) => r.error).map((r) => `${r.path} ${r.error}`).join('\n')).toContain('client-kube-apiserver.crt');
  }, 60_000);

  it('rotates a runID once: handing it over again reports the same result and changes nothing', async () => {
    const { root, sim, runner } = await node();
    try {
      const first = await runner.run(spec(), () => {});
      const serving = first.files.find((f) => f.path === `${S}/serving-kube-apiserver.crt`);
      expect(serving?.servedVerified).toBe(true);
      const afterFirst = await snapshotTree(root);

      const again = await runner.run(spec(), () => {});
      expect(again.resumed).toBe(true);
      expect(again.files).toEqual(first.files);
      expect(again.backupDir).toBe(first.backupDir);
      expect(changedPaths(afterFirst, await snapshotTree(root))).toEqual([]);

      // A new run (the next generation) does rotate again.
      const next = await runner.run(spec({ runID: 'uid-1-g2', generation: 2 }), () => {});
      expect(next.resumed).toBe(false);
      expect(next.files.find((f) => f.path === serving!.path)?.newSerial).not.toBe(serving!.newSerial);
    } finally {
      await sim.stop();
    }
  }, 60_000);

  it('with onFailure Halt leaves the node as the failure left it, and says so again when asked again', async () => {
    const { root, sim, runner } = await node();
    try {
      const before = await snapshotTree(root);
      sim.faults.serveStale = true; // the apiserver comes back with the old certificate
      const failure = runner.run(spec({ onFailure: 'Halt', timeout: '8s' }), () => {});
      await expect(failure).rejects.toThrow(NodeRotationError);
      const err = (await failure.catch((e: unknown) => e)) as NodeRotationError;
      expect(err.step).toBe('verify');
      expect(err.rolledBack).toBe(false);
      expect(err.message).toMatch(/serves serial/);
      // The new files stay in place: nothing was restored.
      const changed = changedPaths(before, await snapshotTree(root, (p) => p.startsWith(`${S}-`)));
      // The api-server service's pairs, and the kubelet pairs rke2-server re-issues whenever it restarts.
      expect(changed.sort()).toEqual([
        'var/lib/rancher/rke2/agent/client-kubelet.crt',
        'var/lib/rancher/rke2/agent/client-kubelet.key',
        'var/lib/rancher/rke2/agent/serving-kubelet.crt',
        'var/lib/rancher/rke2/agent/serving-kubelet.key',
        `${S}/client-kube-apiserver.crt`,
        `${S}/client-kube-apiserver.key`,
        `${S}/serving-kube-apiserver.crt`,
        `${S}/serving-kube-apiserver.key`,
      ]);

      sim.faults.serveStale = false;
      const again = await runner.run(spec({ onFailure: 'Halt', timeout: '8s' }), () => {}).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(NodeRotationError);
      expect((again as NodeRotationError).rolledBack).toBe(false);

      // A new run on the halted node goes ahead from the files as they are, and says where the files from before the halted run are.
      const halted = await fs.readFile(join(root, S, 'serving-kube-apiserver.crt'), 'utf8');
      const said: string[] = [];
      const next = await runner.run(spec({ runID: 'uid-1-g2', generation: 2 }), (e) => said.push(e.message));
      expect(said.find((m) => m.startsWith('note: run uid-1-g1 halted here'))).toMatch(/^note: run uid-1-g1 halted here at step verify \(.*serves serial.*\); the files from before it are in var\/lib\/rancher\/rke2\/server\/tls-\d+, this run backs up the files as they are now$/);
      expect(next.files.find((f) => f.path === `${S}/serving-kube-apiserver.crt`)!.servedVerified).toBe(true);
      expect(await fs.readFile(join(root, S, 'serving-kube-apiserver.crt'), 'utf8')).not.toBe(halted);
    } finally {
      await sim.stop();
    }
  }, 60_000);

  it('with onFailure Rollback restores the node byte for byte', async () => {
    const { root, sim, runner } = await node();
    try {
      const before = await snapshotTree(root);
      sim.faults.serveStale = true;
      const err = (await runner.run(spec({ timeout: '8s' }), () => {}).catch((e: unknown) => e)) as NodeRotationError;
      expect(err).toBeInstanceOf(NodeRotationError);
      expect(err.rolledBack).toBe(true);
      // Every file the rotation touched is back; only the kubelet pairs differ,
      // which rke2 re-issues at every start (k3s agent config get()), rollback or not.
      const A = 'var/lib/rancher/rke2/agent';
      const reissuedAtStart = ['client-kubelet.crt', 'client-kubelet.key', 'serving-kubelet.crt', 'serving-kubelet.key'].map((f) => `${A}/${f}`);
      const changed = changedPaths(before, await snapshotTree(root, (p) => p.startsWith(`${S}-`)));
      expect(changed.filter((p) => !reissuedAtStart.includes(p))).toEqual([]);
      expect(changed).not.toContain(`${S}/serving-kube-apiserver.crt`);
    } finally {
      await sim.stop();
    }
  }, 60_000);
});
