// Runs jest with the flags ESM TypeScript needs, on whatever node npm put first
// on PATH (the pinned node@24 devDependency). e2e suites run one file at a time:
// they share one control plane and, on 2 cores, parallel suites only fight.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const jestBin = require.resolve('jest/bin/jest');
// `--project=NAME` selects a jest project. It is put last because jest's
// --selectProjects takes every following word as a project name, which would
// swallow the test path patterns a person adds (`npm run test:e2e -- smoke`).
const userArgs = process.argv.slice(2);
const project = userArgs.find((a) => a.startsWith('--project='));
const args = [jestBin, '--runInBand', ...userArgs.filter((a) => a !== project)];
if (project) args.push('--selectProjects', project.slice('--project='.length));
const env = {
  ...process.env,
  NODE_OPTIONS: [process.env.NODE_OPTIONS ?? '', '--experimental-vm-modules', '--disable-warning=ExperimentalWarning']
    .join(' ')
    .trim(),
};
const result = spawnSync(process.execPath, args, { stdio: 'inherit', env });
process.exit(result.status ?? 1);
