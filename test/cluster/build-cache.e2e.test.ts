// The binary cache's stamp check: a complete cache is reused, and a cache whose
// binaries are missing or differ from what the stamp recorded (a build cut off
// half-way, a disk that filled up) is detected so it gets rebuilt.
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CLUSTER_SRC_DIR } from './paths.js';

const work = mkdtempSync(join(tmpdir(), 'build-cache-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function check(cache: string): { status: number | null; stderr: string } {
  const r = spawnSync('bash', [join(CLUSTER_SRC_DIR, 'build-binaries.sh'), '--check'], {
    env: { ...process.env, CERTROTATOR_CACHE: cache },
    encoding: 'utf8',
  });
  return { status: r.status, stderr: r.stderr };
}

describe('build-binaries.sh cache detection', () => {
  const real = process.env.CERTROTATOR_BIN_DIR!;
  // A real copy (not hard links: a test writes into it) of the built cache.
  const copy = (name: string): string => {
    const cache = join(work, name);
    mkdirSync(join(cache, 'bin'), { recursive: true });
    cpSync(real, join(cache, 'bin', basename(real)), { recursive: true, preserveTimestamps: true });
    return cache;
  };

  it('reuses a complete cache', () => {
    const r = check(copy('complete'));
    expect(r.stderr).toContain('cache complete');
    expect(r.status).toBe(0);
  });

  it('detects a binary that differs from the stamp', () => {
    const cache = copy('changed');
    writeFileSync(join(cache, 'bin', basename(real), 'kube-apiserver'), 'half-written');
    const r = check(cache);
    expect(r.stderr).toContain('incomplete or changed; rebuilding it');
    expect(r.status).toBe(3);
  });

  it('detects a build that never wrote its stamp', () => {
    const cache = copy('unstamped');
    rmSync(join(cache, 'bin', basename(real), '.complete'));
    const r = check(cache);
    expect(r.stderr).toContain('incomplete or changed; rebuilding it');
    expect(r.status).toBe(3);
  });

  it('says a build is needed when there is no cache', () => {
    const r = check(join(work, 'empty'));
    expect(r.stderr).toContain('a build is needed');
    expect(r.status).toBe(3);
  });

  it('a second run waits for the build in progress (the lock), then uses the cache that build made', async () => {
    const cache = copy('locked');
    const dir = join(cache, 'bin', basename(real));
    // The Lua build too (built apart from the rest, test/cluster/lua): the cache is whole but for the stamp.
    const lua = readlinkSync(join(real, '..', 'lua'));
    cpSync(join(real, '..', dirname(lua)), join(cache, 'bin', dirname(lua)), { recursive: true, preserveTimestamps: true });
    symlinkSync(lua, join(cache, 'bin', 'lua'));
    copyFileSync(join(dir, '.complete'), join(work, 'stamp'));
    rmSync(join(dir, '.complete'));
    // The "other build": holds the lock, finishes the cache (its stamp), lets go.
    const held = join(work, 'lock-held');
    const other = spawn('flock', [join(cache, '.build.lock'), '-c', `touch '${held}'; sleep 3; cp '${join(work, 'stamp')}' '${join(dir, '.complete')}'`], { stdio: 'ignore' });
    // The second run starts once the other one holds the lock (it says so in a file).
    for (const deadline = Date.now() + 10_000; !existsSync(held); await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() > deadline) throw new Error('the other build never took the lock');
    }
    const second = spawn('bash', [join(CLUSTER_SRC_DIR, 'build-binaries.sh')], { env: { ...process.env, CERTROTATOR_CACHE: cache }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    second.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    second.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Were it to build instead of waiting, it would take minutes: end it (our own child, by PID).
    const guard = setTimeout(() => second.pid && process.kill(second.pid, 'SIGTERM'), 30_000);
    const code = await new Promise<number | null>((r) => second.on('exit', (c) => r(c)));
    clearTimeout(guard);
    await new Promise((r) => (other.exitCode === null ? other.on('exit', r) : r(undefined)));
    expect(stderr).toContain('another build holds');
    expect(stderr).toContain('cache complete (built by the other run)');
    expect(stderr).not.toContain('building');
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(dir);
  }, 60_000);
});
