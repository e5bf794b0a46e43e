import { describe, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntryIn } from './cli-entry.js';

// A repository with src/cli/main.ts, src/pki/ca.ts and (optionally) dist/src/cli/main.js, each at a given time.
function repo(times: { main: number; other: number; built?: number }): string {
  const root = mkdtempSync(join(tmpdir(), 'cli-entry-'));
  const put = (rel: string, seconds: number): void => {
    const path = join(root, rel);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, '');
    utimesSync(path, seconds, seconds);
  };
  put('src/cli/main.ts', times.main);
  put('src/pki/ca.ts', times.other);
  if (times.built !== undefined) put('dist/src/cli/main.js', times.built);
  return root;
}

describe('cliEntryIn: the built CLI only when no source is newer', () => {
  const T = 1_800_000_000;
  test.each([
    { why: 'built after every source', times: { main: T, other: T + 10, built: T + 20 }, built: true },
    { why: 'built in the same second as the newest source', times: { main: T, other: T, built: T }, built: true },
    { why: 'a source deep in src/ edited after the build', times: { main: T, other: T + 30, built: T + 20 }, built: false },
    { why: 'main.ts edited after the build', times: { main: T + 30, other: T, built: T + 20 }, built: false },
    { why: 'never built', times: { main: T, other: T }, built: false },
  ])('$why', ({ times, built }) => {
    const root = repo(times);
    try {
      expect(cliEntryIn(root)).toEqual(built ? [join(root, 'dist/src/cli/main.js')] : ['--import', 'tsx', join(root, 'src/cli/main.ts')]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
