// Starting, probing and stopping the control-plane processes. Processes are
// recorded by PID in the cluster directory and only those PIDs are ever
// signalled, after checking that the PID still runs the binary we started
// (a PID can be reused by an unrelated process after ours exits).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';

export interface RecordedProcess {
  name: string;
  pid: number;
  bin: string;
  log: string;
}

export interface HealthProbe {
  url: string;
  /** CA to verify the endpoint with; absent with `insecure` for self-signed component certs. */
  ca?: string;
  insecure?: boolean;
}

export class ComponentStartError extends Error {
  constructor(
    readonly component: string,
    message: string,
    readonly logTail: string,
  ) {
    super(`${component}: ${message}\n--- last lines of ${component}'s log ---\n${logTail}`);
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export function tail(file: string, lines = 25): string {
  if (!existsSync(file)) return '(no log written)';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** Starts `bin` in its own process group with stdout and stderr to `log`. */
export function startProcess(name: string, bin: string, args: string[], log: string): RecordedProcess {
  const fd = openSync(log, 'a');
  try {
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    if (child.pid === undefined) throw new Error(`${name}: could not start ${bin}`);
    return { name, pid: child.pid, bin, log };
  } finally {
    closeSync(fd);
  }
}

export function isRunning(proc: RecordedProcess): boolean {
  try {
    // argv[0] for a binary, argv[1] when an interpreter runs a script; empty for a zombie.
    const argv = readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8').split('\0');
    return argv[0] === proc.bin || argv[1] === proc.bin;
  } catch {
    return false;
  }
}

function probeOnce(probe: HealthProbe): Promise<boolean> {
  return new Promise((resolve) => {
    const url = new URL(probe.url);
    const options = {
      timeout: 2000,
      ca: probe.ca ? readFileSync(probe.ca) : undefined,
      rejectUnauthorized: !probe.insecure,
    };
    const req = (url.protocol === 'https:' ? https : http).get(url, options, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

/** Polls the probe until it answers 200; fails early, with the log tail, if the process died. */
export async function waitHealthy(proc: RecordedProcess, probe: HealthProbe, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isRunning(proc)) throw new ComponentStartError(proc.name, 'exited during start-up', tail(proc.log));
    if (await probeOnce(probe)) return;
    await sleep(250);
  }
  throw new ComponentStartError(proc.name, `not healthy at ${probe.url} after ${timeoutMs / 1000}s`, tail(proc.log));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL — only to PIDs that still run our binary. */
export async function stopProcesses(procs: RecordedProcess[], graceMs = 10000): Promise<void> {
  const alive = procs.filter(isRunning);
  for (const proc of alive) signal(proc, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive.some(isRunning) && Date.now() < deadline) await sleep(100);
  for (const proc of alive.filter(isRunning)) signal(proc, 'SIGKILL');
  while (alive.some(isRunning)) await sleep(50);
}

function signal(proc: RecordedProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(proc.pid, sig);
  } catch {
    // already gone
  }
}

const PIDS_FILE = 'pids.json';

export function readPids(dir: string): RecordedProcess[] {
  const file = join(dir, PIDS_FILE);
  if (!existsSync(file)) return [];
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RecordedProcess[];
  } catch {
    return [];
  }
}

export function writePids(dir: string, procs: RecordedProcess[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, PIDS_FILE), JSON.stringify(procs, null, 2));
}

/** Every process whose command line names `dir` (each component's flags point into its cluster dir). */
export function processesMentioning(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(dir)) found.push(`${pid}: ${cmdline.replaceAll('\0', ' ').slice(0, 120)}`);
    } catch {
      // exited while we looked
    }
  }
  return found;
}
