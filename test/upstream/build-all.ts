// Builds every upstream fixture generator under test/upstream (cached by source
// hash), so `npm test` does it once before its lanes start, not inside one.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { upstreamTool } from './build.js';

const dir = join(process.cwd(), 'test', 'upstream');
for (const name of readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory()).sort()) {
  const t0 = Date.now();
  const bin = await upstreamTool(name);
  process.stderr.write(`[upstream] ${name}: ${bin} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
}
