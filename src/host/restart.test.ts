// The real executor, with systemctl, docker and nsenter replaced by recording stubs
// on PATH: proves the exact commands and the namespace entry, without a host.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rke2Catalog, rkeCatalog } from '../distributions/index.js';
import { HostCommandExecutor, performRestart, restartPlanFor } from './restart.js';
import { HostRoot } from './root.js';

let bin: string;
let log: string;
let root: string;
// Stubs first on PATH; passed explicitly so no test can reach the machine's real systemctl or docker.
let env: NodeJS.ProcessEnv;
const executor = (hostRoot: string, extra: NodeJS.ProcessEnv = {}) => new HostCommandExecutor(hostRoot, { env: { ...env, ...extra } });

beforeAll(async () => {
  bin = await fs.mkdtemp(join(tmpdir(), 'certrotator-bin-'));
  root = await fs.mkdtemp(join(tmpdir(), 'certrotator-host-'));
  await fs.mkdir(join(root, 'var/lib/rancher/rke2'), { recursive: true });
  log = join(bin, 'calls.log');
  const stub = (name: string, body = '') => fs.writeFile(join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${log}\n${body}\n`, { mode: 0o755 });
  await stub('systemctl', '[ "$1" = start ] && [ -n "$FAIL_START" ] && { echo "Job for rke2-server.service failed" >&2; exit 1; }; exit 0');
  await stub('docker', '[ "$1" = ps ] && printf "%s\\n" ${DOCKER_PS:-kube-apiserver kubelet kube-proxy}; exit 0');
  await stub('nsenter', 'shift 8; exec "$@"');
  env = { PATH: `${bin}:/usr/bin:/bin` };
});

afterAll(async () => {
  await fs.rm(bin, { recursive: true, force: true });
  await fs.rm(root, { recursive: true, force: true });
});

const calls = async () => (await fs.readFile(log, 'utf8').catch(() => '')).trim().split('\n');

describe('HostCommandExecutor', () => {
  test('RKE2 server: stop, force-restart marker, start — inside PID 1 namespaces for a mounted host root', async () => {
    await fs.rm(log, { force: true });
    const host = new HostRoot(root, ['var/lib/rancher/rke2']);
    const plan = restartPlanFor(rke2Catalog, ['etcd', 'controlplane', 'worker']);
    let markersSeen: string[] = [];
    await performRestart(plan, executor(root), host, { dataDir: 'var/lib/rancher/rke2' }, [], async (m) => {
      markersSeen = m;
    });
    expect(markersSeen).toEqual(['var/lib/rancher/rke2/force-restart']);
    expect(await fs.readFile(join(root, 'var/lib/rancher/rke2/force-restart'), 'utf8')).toBe('');
    expect(await calls()).toEqual([
      'nsenter -t 1 -m -u -i -n -p -- systemctl stop rke2-server',
      'systemctl stop rke2-server',
      'nsenter -t 1 -m -u -i -n -p -- systemctl start rke2-server',
      'systemctl start rke2-server',
    ]);
  });

  test('RKE2 worker: reset-failed then restart rke2-agent, directly when the root is /', async () => {
    await fs.rm(log, { force: true });
    await executor('/').restartUnit(restartPlanFor(rke2Catalog, ['worker']).kind === 'systemd-restart' ? 'rke2-agent' : 'x');
    expect(await calls()).toEqual(['systemctl reset-failed rke2-agent', 'systemctl restart rke2-agent']);
  });

  test('RKE: docker restart of only the consumers present on the node', async () => {
    await fs.rm(log, { force: true });
    const restarted = await executor('/').restartContainers(['kubelet', 'kube-apiserver', 'etcd']);
    expect(restarted).toEqual(['kubelet', 'kube-apiserver']);
    expect(restartPlanFor(rkeCatalog, ['worker'])).toMatchObject({ kind: 'docker-restart' });
    expect(await calls()).toEqual(['docker ps -a --format {{.Names}}', 'docker restart kubelet', 'docker restart kube-apiserver']);
  });

  test('RKE: etcd gets the catalog stop timeout (a graceful stop hands over its leadership), the others the CLI default', async () => {
    await fs.rm(log, { force: true });
    const plan = restartPlanFor(rkeCatalog, ['etcd', 'controlplane']);
    const outcome = await performRestart(plan, executor('/', { DOCKER_PS: 'etcd kube-apiserver kubelet' }), new HostRoot(root, []), {}, ['etcd', 'kube-apiserver'], async () => {});
    expect(outcome.components).toEqual(['etcd', 'kube-apiserver']);
    expect(await calls()).toEqual(['docker ps -a --format {{.Names}}', 'docker restart -t 30 etcd', 'docker restart kube-apiserver']);
  });

  test('a failing systemctl becomes an error naming the command and its message', async () => {
    await expect(executor('/', { FAIL_START: '1' }).startUnit('rke2-server')).rejects.toThrow('systemctl start rke2-server failed: Job for rke2-server.service failed');
  });
});
