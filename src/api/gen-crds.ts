// `npm run gen:crds`: writes crds/*.yaml from the TypeScript schemas, and the
// same bytes into the Helm chart's crds/ (Helm installs CRDs only from there)
// and deploy/crds/ (kustomize loads nothing from outside deploy/).
// `npm run gen:crds -- --check` exits 1 when the committed files are stale.

import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeGenerated } from './generated-files.js';
import { renderAllCRDs } from './crds.js';

export const CRDS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../crds');
export const CHART_CRDS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../charts/certrotator/crds');
export const DEPLOY_CRDS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../deploy/crds');

function main(): void {
  const check = process.argv.includes('--check');
  const dirs = [CRDS_DIR, CHART_CRDS_DIR, DEPLOY_CRDS_DIR];
  const files = Object.entries(renderAllCRDs()).flatMap(([name, text]) => dirs.map((dir) => [join(dir, name), text] as const));
  if (writeGenerated(files, check, 'npm run gen:crds') > 0 && check) process.exit(1);
}

main();
