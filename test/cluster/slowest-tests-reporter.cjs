// A jest reporter that ends a run with its slowest tests, so a clean-clone log
// says where the time of `npm test` goes (issue 15's 20-minute target) without
// --verbose's thousand lines. It reports; it never fails a run.
const SHOWN = 15;
const secs = (ms) => `${(ms / 1000).toFixed(1).padStart(6)} s`;

class SlowestTestsReporter {
  constructor() {
    this.tests = [];
    this.files = [];
  }

  onTestResult(test, result) {
    const file = test.path.slice(test.context.config.rootDir.length + 1);
    let inTests = 0;
    for (const a of result.testResults) {
      if (typeof a.duration !== 'number') continue;
      this.tests.push({ ms: a.duration, name: `${file} › ${a.fullName}` });
      inTests += a.duration;
    }
    const { start, end } = result.perfStats;
    if (start && end) this.files.push({ ms: end - start, outside: Math.max(0, end - start - inTests), name: file });
  }

  onRunComplete() {
    if (this.tests.length === 0) return;
    const slowest = this.tests.sort((a, b) => b.ms - a.ms).slice(0, SHOWN);
    const total = this.tests.reduce((sum, t) => sum + t.ms, 0);
    const lines = slowest.map((t) => `  ${secs(t.ms)}  ${t.name.slice(0, 200)}`);
    process.stderr.write(`slowest ${slowest.length} of ${this.tests.length} tests (all tests: ${(total / 1000).toFixed(0)} s, hooks not counted):\n${lines.join('\n')}\n`);
    // Time a file spends outside its tests: loading, beforeAll/afterAll (a cluster's start and stop).
    const files = this.files.sort((a, b) => b.outside - a.outside).slice(0, SHOWN);
    process.stderr.write(`most time outside tests (load, beforeAll, afterAll), of ${this.files.length} files:\n${files.map((f) => `  ${secs(f.outside)} of ${secs(f.ms)}  ${f.name}`).join('\n')}\n`);
  }
}

module.exports = SlowestTestsReporter;
