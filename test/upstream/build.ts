// Builds a Go program under test/upstream (fixture generators that use the
// upstream libraries, not our code) once per source version, into
// $HOME/.cache/certrotator/upstream/<name>-<hash of its go.mod, go.sum, *.go>.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export async function upstreamTool(name: string): Promise<string> {
  const src = join(process.cwd(), 'test', 'upstream', name);
  const hash = createHash('sha256');
  for (const f of readdirSync(src).filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go')).sort()) hash.update(f).update(readFileSync(join(src, f)));
  const dir = join(process.env.CERTROTATOR_CACHE ?? join(homedir(), '.cache', 'certrotator'), 'upstream');
  const bin = join(dir, `${name}-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const partial = `${bin}.partial-${process.pid}`;
  // Go at /usr/local/go as on the CI machine (.ci/run puts it on PATH too); the module's own go.sum pins every dependency.
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/local/go/bin`, GOFLAGS: '-mod=readonly', CGO_ENABLED: '0' };
  await execFileAsync('go', ['build', '-o', partial, '.'], { cwd: src, env, timeout: 600_000 });
  renameSync(partial, bin);
  return bin;
}
