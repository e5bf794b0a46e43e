// How the tests, the demo and the benchmarks start the certrotator CLI: the
// emitted JavaScript under dist/ (what `npm run build` and the image ship) when
// it is newer than every TypeScript file under src/, else the source through tsx.
//
// Why not always tsx: the suites start a few hundred agents and controllers on
// two cores, and tsx transforms the CLI's whole module graph at every start.
// Measured under the load of `npm test`: 2.5 s of CPU per start through tsx,
// 1.2 s from dist; agents alone took 30% of the suite's CPU. `npm test` builds
// dist first (`tsc -p tsconfig.json`), so it always runs the built CLI; a test
// run on its own after an edit falls back to tsx and still runs the edited code.
import { readdirSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const THIS_FILE = fileURLToPath(import.meta.url);

/** The node arguments that run the CLI (`node <these> agent …`), absolute, so any cwd works. */
export function cliEntry(): string[] {
  // Running from dist already (a built benchmark): the CLI beside this file.
  if (extname(THIS_FILE) === '.js') return [join(dirname(THIS_FILE), '..', 'cli', 'main.js')];
  cached ??= cliEntryIn(join(dirname(THIS_FILE), '..', '..'));
  return cached;
}
let cached: string[] | undefined;

/** cliEntry for the repository at `root`: dist's main.js if no .ts under src/ is newer, else tsx on the source. */
export function cliEntryIn(root: string): string[] {
  const built = join(root, 'dist', 'src', 'cli', 'main.js');
  const builtAt = mtimeMs(built);
  if (builtAt !== undefined && newestTs(join(root, 'src')) <= builtAt) return [built];
  return ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts')];
}

function mtimeMs(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function newestTs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(path));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}
