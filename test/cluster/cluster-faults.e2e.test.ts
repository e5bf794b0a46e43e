// The harness's behaviour under faults: a component that does not start, ports
// that are already taken, a second cluster beside the first, and an interrupted
// `cluster:up`. Each case starts its own small cluster in its own directory.
import { afterEach, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMPONENT_BINARIES } from './binaries.js';
import { startCluster, stopCluster } from './cluster.js';
import { kubectlOk } from './kubectl.js';
import { REPO_ROOT } from './paths.js';
import { isRunning, processesMentioning, readPids } from './processes.js';

const binDir = (): string => process.env.CERTROTATOR_BIN_DIR!;
const dirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) {
    await stopCluster(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});

function listen(port: number): Promise<net.Server | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(undefined)); // taken already: equally good for this test
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('cluster harness faults', () => {
  it('names a component that does not start and shows the tail of its log, leaving nothing running', async () => {
    const fakeBin = tempDir('fake-bin-');
    for (const bin of COMPONENT_BINARIES) {
      if (bin !== 'kube-apiserver') symlinkSync(join(binDir(), bin), join(fakeBin, bin));
    }
    writeFileSync(join(fakeBin, 'kube-apiserver'), '#!/bin/sh\necho "E1127 simulated: unable to load server certificate" >&2\nexit 1\n');
    chmodSync(join(fakeBin, 'kube-apiserver'), 0o755);
    const dir = tempDir('cluster-broken-');

    const started = startCluster({ dir, binDir: fakeBin, topology: null });
    await expect(started).rejects.toThrow(/^kube-apiserver: exited during start-up\n--- last lines of kube-apiserver's log ---\nE1127 simulated: unable to load server certificate/);
    expect(readFileSync(join(dir, 'etcd.log'), 'utf8')).not.toBe(''); // etcd did start…
    expect(processesMentioning(dir)).toEqual([]); // …and was stopped again
    expect(readPids(dir)).toEqual([]);
  });

  it('starts a second cluster while the first runs and while the well-known ports are taken', async () => {
    const held = await Promise.all([2379, 2380, 6443, 10257, 10259].map(listen));
    try {
      const dir = tempDir('cluster-second-');
      const second = await startCluster({ dir, binDir: binDir(), topology: { distribution: 'rke', servers: 1, workers: 1, octetBase: 160 } });
      expect(second.server).not.toBe(`https://127.0.0.1:6443`);
      const nodes = await kubectlOk(['get', 'nodes', '-o', 'name'], { kubeconfig: second.kubeconfig });
      expect(nodes.trim().split('\n').sort()).toEqual(['node/rke-server-1', 'node/rke-worker-1']);
      // The first cluster (the suite's) is untouched and still has its own six nodes.
      const first = await kubectlOk(['get', 'nodes', '-o', 'name']);
      expect(first.trim().split('\n')).toHaveLength(6);
    } finally {
      for (const server of held) server?.close();
    }
  });

  it('leaves nothing running when cluster:up is interrupted', async () => {
    const dir = tempDir('cluster-interrupted-');
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/cluster/cli.ts'), 'up', '--dir', dir, '--servers', '1', '--workers', '0'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // Interrupt while the apiserver is starting: etcd is up, the rest is not.
        if (stderr.includes('starting kube-apiserver')) resolve();
      });
      child.on('exit', () => reject(new Error(`cluster:up ended before it was interrupted:\n${stderr}`)));
    });
    const during = readPids(dir);
    expect(during.map((p) => p.name)).toContain('etcd');
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('interrupted: stopping what was started');
    for (const proc of during) expect(isRunning(proc)).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
    expect(readPids(dir)).toEqual([]);
  });
});
