// `npm run gen:deploy`: writes deploy/ (a plain kustomize base) from the Helm
// chart rendered with its default values, release `certrotator` in namespace
// `certrotator-system`. `-- --check` exits 1 when deploy/ is stale. The e2e
// suite test/e2e/chart.e2e.test.ts proves deploy/ equals the chart's defaults.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { renderDeploy, REPO } from './deploy-render.js';
import { writeGenerated } from '../src/api/generated-files.js';

const binDir =
  process.env.CERTROTATOR_BIN_DIR ??
  execFileSync('bash', [join(REPO, 'test/cluster/build-binaries.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .pop()!;
const files = renderDeploy(join(binDir, 'helm'));
const check = process.argv.includes('--check');
const stale = writeGenerated(Object.entries(files).map(([rel, text]) => [join(REPO, 'deploy', rel), text] as const), check, 'npm run gen:deploy');
if (check && stale > 0) process.exit(1);
