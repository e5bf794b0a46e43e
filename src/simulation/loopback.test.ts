import { afterEach, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { inBlock } from './loopback.js';

// Each claimant is its own process (as each test run is), with its own temp dir
// standing in for the machine's, so these runs never touch a real run's claims.
const held: ChildProcess[] = [];
const dirs: string[] = [];

function claimant(tmp: string): Promise<{ child: ChildProcess; net: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '-e', "const { runNet } = await import('./src/simulation/loopback.ts'); try { console.log(runNet()); } catch (e) { console.log('ERR ' + e.message); } process.stdin.resume();"],
    { env: { ...process.env, TMPDIR: tmp, CERTROTATOR_LOOPBACK_NET: '', NODE_OPTIONS: '' }, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  held.push(child);
  return new Promise((resolve, reject) => {
    createInterface(child.stdout!).once('line', (net) => resolve({ child, net }));
    child.once('exit', (code) => reject(new Error(`claimant exited with ${code}`)));
  });
}

function end(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    child.once('exit', () => r());
    child.stdin!.end();
  });
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'loopback-test-'));
  dirs.push(d);
  return d;
}

// A claimant still starting (tsx takes seconds on a loaded machine) exits only
// once it has started: the same bound as the tests, not jest's 5 s default.
afterEach(async () => {
  await Promise.all(held.splice(0).filter((c) => c.exitCode === null).map(end));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}, 60_000);

describe('runNet', () => {
  it('gives concurrent runs different networks, and frees each claim when its run exits', async () => {
    const dir = tmp();
    const runs = await Promise.all([1, 2, 3, 4].map(() => claimant(dir)));
    const nets = runs.map((r) => r.net);
    for (const n of nets) expect(n).toMatch(/^127\.(\d+)$/);
    expect(new Set(nets).size).toBe(4);
    expect(readdirSync(join(dir, 'certrotator-loopback')).sort()).toEqual(nets.map((n) => n.split('.')[1]).sort());
    await Promise.all(runs.map((r) => end(r.child)));
    expect(readdirSync(join(dir, 'certrotator-loopback'))).toEqual([]);
  }, 60_000);

  it('takes over a claim whose process is gone, and refuses when every network is held by a live one', async () => {
    const stale = tmp();
    mkdirSync(join(stale, 'certrotator-loopback'));
    // PID 2^22+1 is above Linux's pid_max: no such process.
    for (let b = 1; b <= 254; b++) writeFileSync(join(stale, 'certrotator-loopback', String(b)), String(2 ** 22 + 1));
    expect((await claimant(stale)).net).toMatch(/^127\.\d+$/);

    const full = tmp();
    mkdirSync(join(full, 'certrotator-loopback'));
    for (let b = 1; b <= 254; b++) writeFileSync(join(full, 'certrotator-loopback', String(b)), String(process.pid));
    expect((await claimant(full)).net).toMatch(/^ERR no free loopback network under .*certrotator-loopback: every 127\.B from 1 to 254 is claimed by a live process$/);
  }, 60_000);
});

describe('inBlock', () => {
  it.each([
    ['127.31.1.2', 20, '127.31.21.2'],
    ['127.31.10.3', 140, '127.31.150.3'],
  ])('%s + %i → %s', (ip, base, want) => expect(inBlock(ip, base)).toBe(want));

  it.each([['10.0.1.2', 1], ['127.31.200.1', 60]])('refuses %s + %i', (ip, base) => expect(() => inBlock(ip, base)).toThrow(/not a 127\.B\.x\.y address that fits/));
});
