import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshotTree } from './tree.js';

describe('snapshotTree', () => {
  test('an entry removed while the walk reaches it is left out, not an error (a write cleaning up after itself)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tree-test-'));
    try {
      mkdirSync(join(root, 'partial'));
      writeFileSync(join(root, 'partial', 'a.key'), 'x');
      writeFileSync(join(root, 'kept.crt'), 'y');
      writeFileSync(join(root, 'gone.crt'), 'z');
      // The skip callback runs just before an entry is read: remove it there.
      const removeOnVisit = (rel: string): boolean => {
        if (rel === 'partial' || rel === 'gone.crt') rmSync(join(root, rel), { recursive: true });
        return false;
      };
      expect([...(await snapshotTree(root, removeOnVisit)).keys()]).toEqual(['kept.crt']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('a missing root is an error', async () => {
    await expect(snapshotTree(join(tmpdir(), 'tree-test-no-such-dir'))).rejects.toThrow(/ENOENT/);
  });
});
