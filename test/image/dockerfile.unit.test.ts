// The Dockerfile, checked without a Docker engine: a linter (dockerfile-utils,
// the validator behind VS Code's Dockerfile support) and the image policy —
// Node 24, non-root by default, exec-form entrypoint on the built CLI, a build
// context that holds only what the stages copy. The build stages' commands are
// run for real by build-stage.e2e.test.ts.
import { describe, expect, it } from '@jest/globals';
import { validate } from 'dockerfile-utils';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../cluster/paths.js';
import { dockerignore, parseDockerfile, readText } from './dockerfile.js';

const text = readText(join(REPO_ROOT, 'Dockerfile'));
const stages = parseDockerfile(text);
const included = dockerignore(readText(join(REPO_ROOT, '.dockerignore')));

describe('Dockerfile', () => {
  it('has no linter findings (dockerfile-utils), and the linter does find them in a bad one', () => {
    expect(validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
    const bad = validate('FROM node:24\nMAINTAINER someone\nCMD node a\nCMD node b\nEXPOSE 80/tcpx\n');
    expect(bad.length).toBeGreaterThanOrEqual(3);
  });

  it('is multi-stage on Node 24 (Debian slim: util-linux with nsenter is Essential there), no floating tags', () => {
    expect(stages.map((s) => s.name ?? '(final)')).toEqual(['build', 'deps', '(final)']);
    for (const s of stages) expect(s.from).toBe('node:24-bookworm-slim');
  });

  it('runs as a numeric non-root user by default, the CLI in exec form', () => {
    const final = stages.at(-1)!;
    const user = final.instructions.filter((i) => i.keyword === 'USER').at(-1)!.args;
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    const entry = JSON.parse(final.instructions.find((i) => i.keyword === 'ENTRYPOINT')!.args) as string[];
    expect(entry).toEqual(['node', '/app/dist/src/cli/main.js']);
    // The final image gets no compiler, no dev dependencies, no sources: only the other stages' outputs and package.json.
    const copies = final.instructions.filter((i) => i.keyword === 'COPY');
    expect(copies.map((c) => [c.flags.from ?? 'context', c.args])).toEqual([
      ['deps', '/app/node_modules ./node_modules'],
      ['build', '/app/dist ./dist'],
      ['context', 'package.json ./'],
    ]);
  });

  it('copies only files that exist and that .dockerignore lets into the context, which holds nothing else', () => {
    for (const s of stages) {
      for (const c of s.instructions.filter((i) => i.keyword === 'COPY' && !i.flags.from)) {
        for (const src of c.args.split(/\s+/).slice(0, -1)) {
          expect({ src, exists: existsSync(join(REPO_ROOT, src)), included: included(src.replace(/\/$/, '')) }).toEqual({ src, exists: true, included: true });
        }
      }
    }
    for (const p of ['.git/config', 'node_modules/jest/package.json', 'test/e2e/chart.e2e.test.ts', 'dist/src/cli/main.js', 'charts/certrotator/values.yaml', 'src/cli/rotate.test.ts']) {
      expect({ p, included: included(p) }).toEqual({ p, included: false });
    }
    expect(included('src/cli/main.ts')).toBe(true);
  });
});
