// The Dockerfile's stages replayed for real in directories (no Docker engine
// here): the build stage's `npm ci` and TypeScript build, the production-deps
// stage, and the final stage's layout, whose entrypoint must then start the CLI.
// Not reproduced: the base image itself (this machine's shell and the project's
// pinned Node 24 stand in for node:24-bookworm-slim).
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../cluster/paths.js';
import { dockerignore, listFiles, parseDockerfile, readText, replayStage, type Replay } from './dockerfile.js';

const work = mkdtempSync(join(tmpdir(), 'image-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('Dockerfile stages, replayed', () => {
  it('build and deps stages run; the final layout starts the CLI as its entrypoint', () => {
    const stages = parseDockerfile(readText(join(REPO_ROOT, 'Dockerfile')));
    const included = dockerignore(readText(join(REPO_ROOT, '.dockerignore')));
    // The project's Node 24 first on PATH, as in the base image; npm from the local cache where it can.
    const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, npm_config_prefer_offline: 'true', NODE_OPTIONS: '' };
    const done = new Map<string, Replay>();
    const log: string[] = [];
    let final: Replay | undefined;
    stages.forEach((stage, i) => {
      const r = replayStage(stage, { dir: join(work, `stage-${i}`), context: REPO_ROOT, included, stages: done, env, log });
      if (stage.name) done.set(stage.name, r);
      final = r;
    });
    const app = join(final!.dir, 'app');
    // The build stage compiled the CLI and no test.
    const dist = listFiles(join(app, 'dist'));
    expect(dist).toContain('src/cli/main.js');
    expect(dist.filter((f) => /\.test\.js$/.test(f))).toEqual([]);
    // Production dependencies only: the runtime ones are there, the compiler and test tools are not.
    for (const dep of ['@kubernetes/client-node', '@peculiar/x509', 'pino', 'prom-client', 'yaml']) expect(existsSync(join(app, 'node_modules', dep, 'package.json'))).toBe(true);
    for (const dev of ['typescript', 'jest', 'tsx', 'node-forge', 'dockerfile-utils']) expect({ dev, present: existsSync(join(app, 'node_modules', dev)) }).toEqual({ dev, present: false });

    // ENTRYPOINT ["node", "/app/dist/src/cli/main.js"] with the image's paths mapped into the replayed root.
    const [bin, script] = final!.entrypoint!;
    expect(bin).toBe('node');
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [join(final!.dir, script!), ...args], { cwd: app, env: { ...env, ...final!.env }, encoding: 'utf8' });
    const help = run(...final!.cmd!);
    expect(help.status).toBe(0);
    expect(help.stdout + help.stderr).toMatch(/controller\s+run the CertificateRotation controller/);
    expect(help.stdout + help.stderr).toMatch(/agent\s+run on a node/);
    const agent = run('agent', '--help');
    expect(agent.stdout + agent.stderr).toContain('--host-root DIR');
    expect(log.join('\n')).toMatch(/RUN npx tsc -p tsconfig.build.json \(\d+ ms, exit 0\)/);
  }, 600_000);
});
