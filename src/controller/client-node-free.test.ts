// The controller does not load @kubernetes/client-node unless something asks
// for it (src/kube/kubeconfig.ts says why: about 85 MB of RSS). One value
// import of the package's index anywhere in the controller's module graph
// would load all of it again, and only the 5,000-node benchmark would notice.
// So: load the controller's entry points in a fresh Node process and record
// every client-node module it loads.
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** The client-node modules (paths below its dist/) loaded by importing `entries`. */
function clientNodeModulesLoadedBy(entries: string[]): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = new Set();
    registerHooks({
      resolve(specifier, context, next) {
        const r = next(specifier, context);
        const i = r.url.indexOf('/@kubernetes/client-node/dist/');
        if (i >= 0) loaded.add(r.url.slice(i + '/@kubernetes/client-node/dist/'.length));
        return r;
      },
    });
    for (const e of ${JSON.stringify(entries.map((e) => pathToFileURL(join(root, e)).href))}) await import(e);
    process.stdout.write(JSON.stringify([...loaded].sort()));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out) as string[];
}

describe('the controller without client-node', () => {
  it('loads only client-node’s error class, patch constants and MicroTime, never its index', () => {
    const loaded = clientNodeModulesLoadedBy(['src/controller/run.ts', 'src/cli/main.ts']);
    expect(loaded).toEqual(['gen/apis/exception.js', 'gen/rxjsStub.js', 'middleware.js', 'patch.js', 'types.js']);
  }, 60_000);

  it('sees the package’s index when something imports it (the check can fail)', () => {
    expect(clientNodeModulesLoadedBy(['src/controller/run.ts', 'node_modules/@kubernetes/client-node/dist/index.js'])).toContain('index.js');
  }, 60_000);
});
