// `docker` on a simulated RKE node's PATH: the production restart path
// (HostCommandExecutor.restartContainers) calls it exactly as it would call the
// Docker CLI on an RKE host. It knows the node's containers (docker.json,
// written by the harness from rke-layout.ts) and runs each as a process in the
// node's namespaces: the real Kubernetes binary, or a stand-in for the kubelet,
// kube-proxy and nginx-proxy (rke-host-components.ts).
//   ps [-a] --format {{.Names}}   names of running (with -a: all) containers
//   start NAME...                 starts those not running, returns once they run
//   stop [-t S] NAME...           SIGTERM, then SIGKILL after the stop timeout
//   restart [-t S] NAME...        stop, then start (what rke's RestartContainer does)
//   daemon                        the node's dockerd: the only one that starts
//                                 processes; it keeps every container not stopped
//                                 on purpose running (RKE creates its containers
//                                 with restart policy "always", so a
//                                 kube-controller-manager that exits while the API
//                                 server is still bootstrapping comes back).
// Each CLI verb prints the container names it acted on, as docker does.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, stopProcesses } from '../cluster/processes.js';
import { containerPidFile, readDockerConfig, runningContainer, STAND_IN_IMAGES, stoppedMarker, type DockerConfig } from './docker-config.js';

const HERE = dirname(fileURLToPath(import.meta.url));
// The Docker CLI's default stop timeout (`docker stop|restart -t`, 10 s), which is
// what certrotator's `docker restart` gets; rke's own RestartContainer asks for 5 s
// (docker/docker.go). etcd transfers its leadership when it is stopped gracefully;
// killed, its peers wait out an election first.
const DEFAULT_STOP_TIMEOUT_S = 10;

function stopTimeoutMs(args: readonly string[]): number {
  for (const [i, a] of args.entries()) {
    const m = /^(?:-t|--time)(?:=(\d+))?$/.exec(a);
    if (m) return Number(m[1] ?? args[i + 1]) * 1000;
  }
  return DEFAULT_STOP_TIMEOUT_S * 1000;
}

function argvOf(c: DockerConfig, name: string): string[] {
  const spec = c.containers.find((x) => x.name === name)!;
  if (STAND_IN_IMAGES.includes(spec.image)) return [process.execPath, '--import', 'tsx', join(HERE, 'rke-host-components.ts'), spec.image, ...spec.args];
  return [join(c.binDir, spec.image), ...spec.args];
}

function spawnContainer(c: DockerConfig, name: string): void {
  const fd = openSync(join(c.runDir, 'logs', `${name}.log`), 'a');
  try {
    const [bin, ...args] = argvOf(c, name);
    const child = spawn(bin!, args, { detached: true, stdio: ['ignore', fd, fd], cwd: join(HERE, '..', '..') });
    child.unref();
    writeFileSync(containerPidFile(c, name), String(child.pid));
  } finally {
    closeSync(fd);
  }
}

async function daemon(c: DockerConfig): Promise<void> {
  mkdirSync(join(c.runDir, 'logs'), { recursive: true });
  mkdirSync(join(c.runDir, 'pods'), { recursive: true });
  process.once('SIGTERM', () => process.exit(0));
  for (;;) {
    for (const x of c.containers) {
      if (!existsSync(stoppedMarker(c, x.name)) && !runningContainer(c, x.name)) {
        process.stderr.write(`${new Date().toISOString()} starting ${x.name}\n`);
        spawnContainer(c, x.name);
      }
    }
    await sleep(300);
  }
}

async function start(c: DockerConfig, name: string): Promise<void> {
  rmSync(stoppedMarker(c, name), { force: true });
  for (let waited = 0; !runningContainer(c, name); waited += 100) {
    if (waited > 30_000) throw new Error(`Error response from daemon: container ${name} did not start (is the node's dockerd running?)`);
    await sleep(100);
  }
}

async function stop(c: DockerConfig, name: string, timeoutMs: number): Promise<void> {
  writeFileSync(stoppedMarker(c, name), '');
  const proc = runningContainer(c, name);
  if (proc) await stopProcesses([proc], timeoutMs);
}

async function main(): Promise<number> {
  const [nodeDir, verb, ...rest] = process.argv.slice(2);
  if (!nodeDir || !verb) {
    process.stderr.write('usage: docker VERB [ARGS]\n');
    return 2;
  }
  const c = readDockerConfig(nodeDir);
  if (verb === 'daemon') {
    await daemon(c);
    return 0;
  }
  if (verb === 'ps') {
    const all = rest.includes('-a') || rest.includes('--all');
    for (const x of c.containers) if (all || runningContainer(c, x.name)) process.stdout.write(`${x.name}\n`);
    return 0;
  }
  if (!['start', 'stop', 'restart'].includes(verb)) {
    process.stderr.write(`docker stand-in: unknown command ${verb}\n`);
    return 2;
  }
  const timeout = stopTimeoutMs(rest);
  const names = rest.filter((a, i) => !a.startsWith('-') && !/^(-t|--time)$/.test(rest[i - 1] ?? ''));
  const unknown = names.find((n) => !c.containers.some((x) => x.name === n));
  if (unknown) {
    process.stderr.write(`Error response from daemon: No such container: ${unknown}\n`);
    return 1;
  }
  for (const name of names) {
    if (verb !== 'start') await stop(c, name, timeout);
    if (verb !== 'stop') await start(c, name);
    process.stdout.write(`${name}\n`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);
