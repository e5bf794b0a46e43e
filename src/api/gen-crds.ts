// `npm run gen:crds`: writes crds/*.yaml from the TypeScript schemas.
// `npm run gen:crds -- --check` exits 1 when the committed files are stale.

import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderAllCRDs } from './crds.js';

export const CRDS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../crds');

function main(): void {
  const check = process.argv.includes('--check');
  let stale = 0;
  mkdirSync(CRDS_DIR, { recursive: true });
  for (const [name, text] of Object.entries(renderAllCRDs())) {
    const path = join(CRDS_DIR, name);
    let current = '';
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      // missing: counts as stale
    }
    if (current === text) continue;
    stale++;
    if (check) {
      console.error(`stale: ${path} (run npm run gen:crds)`);
    } else {
      writeFileSync(path, text);
      console.log(`wrote ${path}`);
    }
  }
  if (check && stale > 0) process.exit(1);
}

main();
