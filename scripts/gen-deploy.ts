// `npm run gen:deploy`: writes deploy/ (a plain kustomize base) from the Helm
// chart rendered with its default values, release `certrotator` in namespace
// `certrotator-system`. `-- --check` exits 1 when deploy/ is stale. The e2e
// suite test/e2e/chart.e2e.test.ts proves deploy/ equals the chart's defaults.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderDeploy, REPO } from './deploy-render.js';

const binDir =
  process.env.CERTROTATOR_BIN_DIR ??
  execFileSync('bash', [join(REPO, 'test/cluster/build-binaries.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .pop()!;
const files = renderDeploy(join(binDir, 'helm'));
const check = process.argv.includes('--check');
let stale = 0;
mkdirSync(join(REPO, 'deploy', 'crds'), { recursive: true });
for (const [rel, text] of Object.entries(files)) {
  const path = join(REPO, 'deploy', rel);
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    /* missing */
  }
  if (current === text) continue;
  stale++;
  if (check) console.error(`stale: ${path} (run npm run gen:deploy)`);
  else {
    writeFileSync(path, text);
    console.log(`wrote ${path}`);
  }
}
if (check && stale > 0) process.exit(1);
