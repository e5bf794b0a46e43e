// The binary cache's stamp check: a complete cache is reused, and a cache whose
// binaries are missing or differ from what the stamp recorded (a build cut off
// half-way, a disk that filled up) is detected so it gets rebuilt.
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
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
});
