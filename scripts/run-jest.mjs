// Runs jest with the flags ESM TypeScript needs, on whatever node npm put first
// on PATH (the pinned node@24 devDependency). Within a jest run, e2e suites run
// one file at a time: they share one control plane.
//
// `npm test` (no arguments) runs two lanes at once, because the real-component
// suites (test/e2e/*-real-*) and the chaos suite spend much of their time
// waiting on restarts (etcd's graceful stop, leader hand-overs, lease
// renewals), and they bring their own clusters instead of the shared one:
//   real:  the real-component suites, the chaos suite, the CLI's rotation suite,
//          the host's fault injection and the other suites that need no shared
//          control plane (RKE's own cluster, image stages, build cache, upstream
//          trees, capabilities, netns), one after the other;
//   main:  every other suite, unit and e2e, on the shared control plane.
// The two take about the same time (each prints its slowest tests at the end);
// a third lane was tried and was slower: the two cores are already busy about
// 90% of the time with two. Each lane is its own jest process; the real lane's
// lines are prefixed with `[real] `. The exit code is non-zero if either failed.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const jestBin = require.resolve('jest/bin/jest');
// The suites that bring their own clusters or need none, and two slow unit
// suites that need no cluster either (the CLI's rotations on simulated nodes,
// the host's fault injection; about 165 s together), to even the lanes out: the real lane.
const REAL_SUITES = [
  'test/e2e/([a-z]+-real-|chaos\\.|rke\\.|upstream-trees\\.|agent-capabilities\\.)',
  'test/image/build-stage\\.',
  'test/cluster/build-cache\\.',
  'test/realnode/(netns|leftovers)\\.',
  'src/cli/rotate\\.test\\.ts',
  'src/host/failures\\.test\\.ts',
].join('|');

// A run's marker and directory. On SIGINT or SIGTERM jest exits without running
// the suites' afterAll, so what they started would stay: every process the run
// starts inherits CERTROTATOR_TEST_RUN in its environment, and every cluster of
// real components and network it makes is listed in the run's directory
// (test/realnode/cleanup-list.ts). After an interruption, endLeftovers() stops
// the listed clusters by their recorded PIDs, deletes their networks, and ends
// the processes that carry this run's marker, none other.
const runId = `${process.pid}-${randomBytes(4).toString('hex')}`;
const runDir = mkdtempSync(join(tmpdir(), 'certrotator-run-'));
const env = {
  ...process.env,
  CERTROTATOR_TEST_RUN: runId,
  CERTROTATOR_TEST_RUN_DIR: runDir,
  NODE_OPTIONS: [process.env.NODE_OPTIONS ?? '', '--experimental-vm-modules', '--disable-warning=ExperimentalWarning']
    .join(' ')
    .trim(),
};

function markedProcesses() {
  const marker = `CERTROTATOR_TEST_RUN=${runId}`;
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(marker)) out.push(Number(entry));
    } catch {
      // gone, or a zombie: nothing to end
    }
  }
  return out;
}

async function endLeftovers() {
  process.stderr.write(`interrupted: stopping what the run started (${runDir})\n`);
  spawnSync(process.execPath, ['--import', 'tsx', 'test/realnode/leftovers.ts', runDir], { stdio: 'inherit', env: { ...process.env, NODE_OPTIONS: '' } });
  for (const signal of ['SIGTERM', 'SIGKILL']) {
    for (const pid of markedProcesses()) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    if (signal === 'SIGTERM') await new Promise((r) => setTimeout(r, 3000));
  }
  const left = markedProcesses();
  if (left.length > 0) process.stderr.write(`still running after SIGKILL: ${left.join(', ')}\n`);
}

const children = [];
let interrupted = false;
// Passed on to the jest processes: a Ctrl-C or a CI timeout must not leave clusters running.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = true;
    for (const c of children) if (c.exitCode === null) c.kill(signal);
  });
}

/** Runs jest; resolves when it exits. Its output is prefixed line by line when `prefix` is set. */
function jest(args, extraEnv = {}, prefix = '') {
  const child = spawn(process.execPath, jestArgs(args), { env: { ...env, ...extraEnv }, stdio: prefix ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
  children.push(child);
  if (prefix) {
    for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
      createInterface(stream).on('line', (line) => out.write(`${prefix}${line}\n`));
    }
  }
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code: code ?? 1, signal, pid: child.pid })));
}

async function finish(code) {
  if (interrupted) await endLeftovers();
  rmSync(runDir, { recursive: true, force: true });
  process.exit(interrupted && code === 0 ? 130 : code);
}

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
if (userArgs.length > 0) await finish((await jest(userArgs)).code);

// Built (or found in the cache) once, before the lanes start: two global setups
// must not build into the same cache directory at the same time.
const build = spawnSync('bash', ['test/cluster/build-binaries.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
if (build.status !== 0) await finish(build.status ?? 1);
// The same for the fixture generators built from upstream Go code (test/upstream).
const upstream = spawnSync(process.execPath, ['--import', 'tsx', 'test/upstream/build-all.ts'], { stdio: ['ignore', 'ignore', 'inherit'] });
if (upstream.status !== 0) await finish(upstream.status ?? 1);

async function lane(name, args, extraEnv, prefix) {
  const t0 = Date.now();
  const { code, signal, pid } = await jest(args, extraEnv, prefix);
  return { name, code, signal, pid, seconds: (Date.now() - t0) / 1000 };
}

const results = await Promise.all([
  lane('real', [REAL_SUITES], { CERTROTATOR_E2E_SHARED_CLUSTER: 'off' }, '[real] '),
  lane('main', ['--testPathIgnorePatterns', '/node_modules/', REAL_SUITES], {}, ''),
]);
for (const r of results) {
  process.stderr.write(`lane ${r.name}: ${r.code === 0 ? 'passed' : `FAILED (exit ${r.code}${r.signal ? `, ${r.signal}` : ''})`} in ${r.seconds.toFixed(0)} s\n`);
  // What failed, written by the lane's reporter (test/cluster/slowest-tests-reporter.cjs): the last lines of the log name it.
  if (r.code !== 0) {
    try {
      process.stderr.write(`${readFileSync(join(runDir, `failures-${r.pid}.txt`), 'utf8').trimEnd().replace(/^/gm, `  [${r.name}] `)}\n`);
    } catch {
      process.stderr.write(`  [${r.name}] its reporter recorded no failed test: see the lane's own output above\n`);
    }
  }
}
await finish(results.some((r) => r.code !== 0) ? 1 : 0);
