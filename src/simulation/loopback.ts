// The loopback network a test run binds its simulated nodes on: "127.<B>", with
// B claimed per run. Simulated nodes listen on the distributions' real ports
// (6443, 2379, …), which the catalog's verification dials, so two runs on one
// machine could only collide on addresses; each run therefore takes a /16 of
// 127.0.0.0/8 (all of it routes to lo on Linux) that no live run holds.
//
// The claim is a file per B under the temp dir holding the claimer's PID; a file
// whose PID is gone is stale and taken over. The first call in a process claims
// and exports CERTROTATOR_LOOPBACK_NET, so the processes it starts inherit it.
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ENV = 'CERTROTATOR_LOOPBACK_NET';
// 127.0.x is left to everything else on the machine (127.0.0.1 above all).
const FIRST = 1;
const LAST = 254;

/** "127.B" for this run; claims B on first use. */
export function runNet(): string {
  const set = process.env[ENV];
  if (set) {
    if (!/^127\.\d{1,3}$/.test(set)) throw new Error(`${ENV}=${set}: expected "127.<0-255>"`);
    return set;
  }
  const net = `127.${claim()}`;
  process.env[ENV] = net;
  return net;
}

/** An address in this run's network: 127.B.<third>.<fourth>. */
export function runIp(third: number, fourth: number): string {
  return `${runNet()}.${third}.${fourth}`;
}

function claim(): number {
  const dir = join(tmpdir(), 'certrotator-loopback');
  mkdirSync(dir, { recursive: true });
  for (let attempt = 0; attempt < 200; attempt++) {
    const b = randomInt(FIRST, LAST + 1);
    const file = join(dir, String(b));
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      process.once('exit', () => release(file));
      return b;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (!holderAlive(file)) {
        try {
          unlinkSync(file);
        } catch {
          /* another run took it over first */
        }
      }
    }
  }
  throw new Error(`no free loopback network under ${dir}: every 127.B from ${FIRST} to ${LAST} is claimed by a live process`);
}

function holderAlive(file: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8'));
  } catch {
    return true; // being written right now
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function release(file: string): void {
  try {
    if (Number(readFileSync(file, 'utf8')) === process.pid) unlinkSync(file);
  } catch {
    /* already gone */
  }
}

/**
 * A shared-cluster node's address (127.B.x.y) moved into a suite's own block,
 * 127.B.(x+base).y: suites that run their own simulated components for the
 * shared cluster's nodes bind there, so a component left by one suite never
 * answers for another's.
 */
export function inBlock(ip: string, base: number): string {
  const [a, b, x, y] = ip.split('.').map(Number);
  const third = x! + base;
  if (a !== 127 || third > 255) throw new Error(`inBlock(${ip}, ${base}): not a 127.B.x.y address that fits`);
  return `${a}.${b}.${third}.${y}`;
}
