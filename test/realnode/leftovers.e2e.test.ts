// What an interrupted `npm test` leaves is ended by leftovers.ts (scripts/run-jest.mjs
// runs it after SIGINT or SIGTERM): the clusters and networks listed while the run
// made them, and nothing else. Needs root (network namespaces); every address is in
// the networks' own /24s.
import { afterAll, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../cluster/paths.js';
import { isRunning, sleep, startProcess, stopProcesses, writePids, type RecordedProcess } from '../cluster/processes.js';
import { listForCleanup } from './cleanup-list.js';
import { linkNames, namespaceNames } from './ip-names.js';
import { createHostNetwork, destroyHostNetwork, inNode, type HostNetwork } from './netns.js';

const NODE = process.execPath;
const work = mkdtempSync(join(tmpdir(), 'leftovers-e2e-'));
const started: RecordedProcess[] = [];
const stateFiles: string[] = [];

afterAll(async () => {
  await stopProcesses(started.filter(isRunning), 2000);
  for (const f of stateFiles) await destroyHostNetwork(f);
  rmSync(work, { recursive: true, force: true });
});

async function network(dir: string, node: string): Promise<HostNetwork> {
  const stateFile = join(dir, 'network.json');
  stateFiles.push(stateFile);
  return createHostNetwork({ stateFile, nodes: [node] });
}

async function present(net: HostNetwork): Promise<{ netns: boolean; bridge: boolean }> {
  return { netns: (await namespaceNames()).includes(net.hosts[0]!.netns), bridge: (await linkNames()).includes(net.bridge) };
}

it("stops a listed cluster's recorded processes, deletes its network and directory, and a listed network; an unlisted network stays", async () => {
  const runDir = join(work, 'run');
  const clusterDir = join(work, 'cluster');
  const listedDir = join(work, 'listed');
  const unlistedDir = join(work, 'unlisted');
  for (const d of [runDir, clusterDir, listedDir, unlistedDir]) mkdirSync(d);

  // Made outside a run: not listed.
  const unlisted = await network(unlistedDir, 'u1');
  const saved = process.env.CERTROTATOR_TEST_RUN_DIR;
  process.env.CERTROTATOR_TEST_RUN_DIR = runDir;
  let cluster: HostNetwork;
  let listed: HostNetwork;
  try {
    // As startRealCluster does: the directory first, then its network, then a process inside a node, recorded by PID.
    listForCleanup('cluster', clusterDir);
    cluster = await network(clusterDir, 'c1');
    listed = await network(listedDir, 'l1');
  } finally {
    if (saved === undefined) delete process.env.CERTROTATOR_TEST_RUN_DIR;
    else process.env.CERTROTATOR_TEST_RUN_DIR = saved;
  }
  const [cmd, ...args] = inNode(cluster.hosts[0]!, [NODE, '-e', 'setInterval(() => {}, 1000)']);
  // `ip netns exec` execs node in place: recorded as NODE, as the harness records its node processes.
  const proc = { ...startProcess('idle', cmd!, args, join(work, 'idle.log')), bin: NODE };
  started.push(proc);
  writePids(clusterDir, [proc]);
  for (const deadline = Date.now() + 10_000; !isRunning(proc) && Date.now() < deadline; ) await sleep(50);
  expect(isRunning(proc)).toBe(true);
  expect(await present(cluster)).toEqual({ netns: true, bridge: true });

  const res = spawnSync(NODE, ['--import', 'tsx', join(REPO_ROOT, 'test/realnode/leftovers.ts'), runDir], { cwd: REPO_ROOT, env: { ...process.env, NODE_OPTIONS: '' }, encoding: 'utf8' });
  expect({ code: res.status, stderr: res.stderr }).toEqual({ code: 0, stderr: '' });

  for (const deadline = Date.now() + 5000; isRunning(proc) && Date.now() < deadline; ) await sleep(50);
  expect(isRunning(proc)).toBe(false);
  expect(await present(cluster)).toEqual({ netns: false, bridge: false });
  expect(existsSync(clusterDir)).toBe(false);
  expect(await present(listed)).toEqual({ netns: false, bridge: false });
  expect(existsSync(join(listedDir, 'network.json'))).toBe(false);
  expect(await present(unlisted)).toEqual({ netns: true, bridge: true });
});
