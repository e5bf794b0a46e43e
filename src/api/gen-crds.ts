// `npm run gen:crds`: writes crds/*.yaml from the TypeScript schemas, and the
// same bytes into the Helm chart's crds/ (Helm installs CRDs only from there)
// and deploy/crds/ (kustomize loads nothing from outside deploy/).
// `npm run gen:crds -- --check` exits 1 when the committed files are stale.

import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderAllCRDs } from './crds.js';

export const CRDS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../crds');
export const CHART_CRDS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../charts/certrotator/crds');
export const DEPLOY_CRDS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../deploy/crds');

function main(): void {
  const check = process.argv.includes('--check');
  let stale = 0;
  const dirs = [CRDS_DIR, CHART_CRDS_DIR, DEPLOY_CRDS_DIR];
  for (const dir of dirs) mkdirSync(dir, { recursive: true });
  const files = Object.entries(renderAllCRDs()).flatMap(([name, text]) => dirs.map((dir) => [join(dir, name), text] as const));
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
      console.error(`stale: ${path} (run npm run gen:crds)`);
    } else {
      writeFileSync(path, text);
      console.log(`wrote ${path}`);
    }
  }
  if (check && stale > 0) process.exit(1);
}

main();
