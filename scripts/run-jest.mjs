// Runs jest with the flags ESM TypeScript needs, on whatever node npm put first
// on PATH (the pinned node@24 devDependency). Within a jest run, e2e suites run
// one file at a time: they share one control plane.
//
// `npm test` (no arguments) runs two lanes at once, because the real-component
// suites (test/e2e/*-real-*) and the chaos suite spend much of their time
// waiting on restarts (etcd's graceful stop, leader hand-overs, lease
// renewals), and they bring their own clusters instead of the shared one:
//   real:  the real-component suites, the chaos suite, the CLI's rotation suites,
//          the host's fault injection and the other suites that need no shared
//          control plane (RKE's own cluster, image stages, build cache, upstream
//          trees, capabilities, netns), one after the other;
//   main:  every other suite, unit and e2e, on the shared control plane.
// The two take about the same time (each prints its slowest tests at the end);
// a third lane was tried and was slower: the two cores are already busy about
// 90% of the time with two. Each lane is its own jest process; the real lane's
// lines are prefixed with `[real] `. The exit code is non-zero if either failed.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const jestBin = require.resolve('jest/bin/jest');
// The suites that bring their own clusters or need none, and three slow unit
// suites that need no cluster either (the CLI's rotations on simulated nodes,
// the host's fault injection; about 170 s together), to even the lanes out: the real lane.
const REAL_SUITES = [
  'test/e2e/([a-z]+-real-|chaos\\.|rke\\.|upstream-trees\\.|agent-capabilities\\.)',
  'test/image/build-stage\\.',
  'test/cluster/build-cache\\.',
  'test/realnode/netns\\.',
  'src/cli/rotate\\.test\\.ts',
  'src/cli/rotate-rke2\\.test\\.ts',
  'src/host/failures\\.test\\.ts',
].join('|');

const env = {
  ...process.env,
  NODE_OPTIONS: [process.env.NODE_OPTIONS ?? '', '--experimental-vm-modules', '--disable-warning=ExperimentalWarning']
    .join(' ')
    .trim(),
};

// `--project=NAME` selects a jest project. It is put last because jest's
// --selectProjects takes every following word as a project name, which would
// swallow the test path patterns a person adds (`npm run test:e2e -- smoke`).
function jestArgs(userArgs) {
  const project = userArgs.find((a) => a.startsWith('--project='));
  const args = [jestBin, '--runInBand', ...userArgs.filter((a) => a !== project)];
  if (project) args.push('--selectProjects', project.slice('--project='.length));
  return args;
}

const userArgs = process.argv.slice(2);
if (userArgs.length > 0) {
  const result = spawnSync(process.execPath, jestArgs(userArgs), { stdio: 'inherit', env });
  process.exit(result.status ?? 1);
}

// Built (or found in the cache) once, before the lanes start: two global setups
// must not build into the same cache directory at the same time.
const build = spawnSync('bash', ['test/cluster/build-binaries.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
if (build.status !== 0) process.exit(build.status ?? 1);
// The same for the fixture generators built from upstream Go code (test/upstream).
const upstream = spawnSync(process.execPath, ['--import', 'tsx', 'test/upstream/build-all.ts'], { stdio: ['ignore', 'ignore', 'inherit'] });
if (upstream.status !== 0) process.exit(upstream.status ?? 1);

const children = [];
// Passed on to both lanes: a Ctrl-C or a CI timeout must not leave one lane's clusters running.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const c of children) if (c.exitCode === null) c.kill(signal);
  });
}

function lane(name, args, extraEnv, prefix) {
  const t0 = Date.now();
  const child = spawn(process.execPath, jestArgs(args), { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
    createInterface(stream).on('line', (line) => out.write(`${prefix}${line}\n`));
  }
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ name, code: code ?? 1, signal, seconds: (Date.now() - t0) / 1000 }));
  });
}

const results = await Promise.all([
  lane('real', [REAL_SUITES], { CERTROTATOR_E2E_SHARED_CLUSTER: 'off' }, '[real] '),
  lane('main', ['--testPathIgnorePatterns', '/node_modules/', REAL_SUITES], {}, ''),
]);
for (const r of results) {
  process.stderr.write(`lane ${r.name}: ${r.code === 0 ? 'passed' : `FAILED (exit ${r.code}${r.signal ? `, ${r.signal}` : ''})`} in ${r.seconds.toFixed(0)} s\n`);
}
process.exit(results.some((r) => r.code !== 0) ? 1 : 0);
