// `systemctl` on a simulated node's PATH: the production restart path
// (HostCommandExecutor) calls it exactly as it would call systemd. It knows one
// unit, the node's rke2-server or rke2-agent, and runs it as rke2-unit.ts.
//   start         starts the unit unless it is active; returns once it is up
//                 (rke2 is Type=notify: systemctl start waits for READY)
//   stop          ends the unit's main process only (KillMode=process: static pods keep running)
//   restart       stop, then start
//   reset-failed  nothing to reset here
//   is-active     exit 0 when active
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readUnitConfig, unitLogFile as logFile, unitPidFile as pidFile, unitReadyFile as readyFile, type UnitConfig } from './unit-config.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


function mainPid(c: UnitConfig): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(c), 'utf8'));
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('rke2-unit') ? pid : undefined;
  } catch {
    return undefined;
  }
}

function tail(file: string, n = 8): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n') : '';
}

async function start(c: UnitConfig): Promise<void> {
  if (mainPid(c)) return;
  const fd = openSync(logFile(c), 'a');
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'rke2-unit.ts'), join(c.runDir, '..')], {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: join(HERE, '..', '..'),
    });
  } finally {
    closeSync(fd);
  }
  // Watched through the child itself: right after the fork its /proc cmdline is
  // still ours, so mainPid() cannot tell yet.
  let exited = false;
  child.once('exit', () => (exited = true));
  const pid = child.pid;
  writeFileSync(pidFile(c), String(pid));
  try {
    for (let waited = 0; waited < 180_000; waited += 100) {
      if (existsSync(readyFile(c)) && readFileSync(readyFile(c), 'utf8') === String(pid)) return;
      if (exited) throw new Error(`Job for ${c.unit}.service failed.\n${tail(logFile(c))}`);
      await sleep(100);
    }
    throw new Error(`${c.unit}.service did not become active within 180 s\n${tail(logFile(c))}`);
  } finally {
    child.unref();
  }
}

async function stop(c: UnitConfig): Promise<void> {
  const pid = mainPid(c);
  if (!pid) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 300 && mainPid(c); i++) await sleep(100);
  if (mainPid(c)) process.kill(pid, 'SIGKILL');
}

async function main(): Promise<number> {
  const [nodeDir, verb, unitArg] = process.argv.slice(2);
  if (!nodeDir || !verb) {
    process.stderr.write('usage: systemctl VERB UNIT\n');
    return 2;
  }
  const c = readUnitConfig(nodeDir);
  const unit = (unitArg ?? '').replace(/\.service$/, '');
  if (unit !== c.unit) {
    process.stderr.write(`Failed to ${verb} ${unit}.service: Unit ${unit}.service not found.\n`);
    return 5;
  }
  switch (verb) {
    case 'start':
      await start(c);
      return 0;
    case 'stop':
      await stop(c);
      return 0;
    case 'restart':
      await stop(c);
      await start(c);
      return 0;
    case 'reset-failed':
      return 0;
    case 'is-active':
      return mainPid(c) ? 0 : 3;
    default:
      process.stderr.write(`systemctl stand-in: unknown verb ${verb}\n`);
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);
