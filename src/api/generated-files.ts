// Writing generated files, or with `--check` only saying which are stale (CI
// and tests use the check so a committed copy can never drift from its source).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Writes every stale file (or reports it with `check`); returns how many were stale. */
export function writeGenerated(files: readonly (readonly [path: string, text: string])[], check: boolean, regenerate: string): number {
  let stale = 0;
  for (const [path, text] of files) {
    let current = '';
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      // missing: counts as stale
    }
    if (current === text) continue;
    stale++;
    if (check) {
      console.error(`stale: ${path} (run ${regenerate})`);
    } else {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
      console.log(`wrote ${path}`);
    }
  }
  return stale;
}
