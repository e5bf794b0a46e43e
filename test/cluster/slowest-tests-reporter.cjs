// A jest reporter that ends a run with its slowest tests, so a clean-clone log
// says where the time of `npm test` goes (issue 15's 20-minute target) without
// --verbose's thousand lines, and then with its failures again, briefly: a CI
// log may keep only its tail, and jest prints a failure where it happens,
// minutes before the end. It reports; it never fails a run.
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');

const SHOWN = 15;
const FAILURE_LINES = 20;
// eslint-disable-next-line no-control-regex
const plain = (text) => text.replace(/\u001b\[[0-9;]*m/g, '');
const firstLines = (text) => plain(text).split('\n').filter((l) => l.trim() !== '' && !/^\s*at /.test(l)).slice(0, FAILURE_LINES).map((l) => `      ${l.slice(0, 240)}`);
const secs = (ms) => `${(ms / 1000).toFixed(1).padStart(6)} s`;

class SlowestTestsReporter {
  constructor() {
    this.tests = [];
    this.files = [];
    this.failures = [];
  }

  onTestResult(test, result) {
    const file = test.path.slice(test.context.config.rootDir.length + 1);
    let inTests = 0;
    if (result.testExecError) this.failures.push({ name: `${file} (the file did not run)`, message: result.testExecError.message ?? String(result.testExecError) });
    // A hook's failure (beforeAll, afterAll) fails the file without failing a test.
    else if (result.numFailingTests === 0 && result.failureMessage) this.failures.push({ name: `${file} (a hook failed)`, message: result.failureMessage });
    for (const a of result.testResults) {
      if (a.status === 'failed') this.failures.push({ name: `${file} › ${a.fullName}`, message: a.failureMessages.join('\n') });
      if (typeof a.duration !== 'number') continue;
      this.tests.push({ ms: a.duration, name: `${file} › ${a.fullName}` });
      inTests += a.duration;
    }
    const { start, end } = result.perfStats;
    if (start && end) this.files.push({ ms: end - start, outside: Math.max(0, end - start - inTests), name: file });
  }

  onRunComplete() {
    this.printSlowest();
    this.printFailures();
  }

  printSlowest() {
    if (this.tests.length === 0) return;
    const slowest = this.tests.sort((a, b) => b.ms - a.ms).slice(0, SHOWN);
    const total = this.tests.reduce((sum, t) => sum + t.ms, 0);
    const lines = slowest.map((t) => `  ${secs(t.ms)}  ${t.name.slice(0, 200)}`);
    process.stderr.write(`slowest ${slowest.length} of ${this.tests.length} tests (all tests: ${(total / 1000).toFixed(0)} s, hooks not counted):\n${lines.join('\n')}\n`);
    // Time a file spends outside its tests: loading, beforeAll/afterAll (a cluster's start and stop).
    const files = this.files.sort((a, b) => b.outside - a.outside).slice(0, SHOWN);
    process.stderr.write(`most time outside tests (load, beforeAll, afterAll), of ${this.files.length} files:\n${files.map((f) => `  ${secs(f.outside)} of ${secs(f.ms)}  ${f.name}`).join('\n')}\n`);
  }

  printFailures() {
    if (this.failures.length === 0) return;
    const failed = this.failures.map((f) => [`  ${f.name.slice(0, 240)}`, ...firstLines(f.message)].join('\n'));
    const text = `failed: ${this.failures.length} (each with the first ${FAILURE_LINES} lines of its message, stack left out; the whole of it is above)\n${failed.join('\n')}\n`;
    process.stderr.write(text);
    // For scripts/run-jest.mjs, which prints it again under its lane's result, at the very end of `npm test`.
    const dir = process.env.CERTROTATOR_TEST_RUN_DIR;
    if (dir) writeFileSync(join(dir, `failures-${process.pid}.txt`), text);
  }
}

module.exports = SlowestTestsReporter;
