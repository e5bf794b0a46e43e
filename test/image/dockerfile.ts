// Reads the Dockerfile and .dockerignore, and replays a stage's filesystem
// instructions (WORKDIR, COPY, RUN) in a directory instead of an image layer.
// No Docker engine runs here, so this is how the build stages' commands get run
// for real: only the base image itself is not reproduced (the host's Node 24 —
// the project's pinned one — and shell stand in for node:24-bookworm-slim's).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';

export interface Instruction {
  line: number;
  keyword: string;
  flags: Record<string, string>;
  args: string;
}
export interface Stage {
  name?: string;
  from: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const logical: { line: number; text: string }[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const t = raw.trim();
    if (!buf && (t === '' || t.startsWith('#'))) return;
    if (!buf) start = i + 1;
    buf += (buf ? ' ' : '') + t.replace(/\\$/, '').trim();
    if (!t.endsWith('\\')) {
      logical.push({ line: start, text: buf });
      buf = '';
    }
  });
  const stages: Stage[] = [];
  for (const { line, text: l } of logical) {
    const [keyword, ...rest] = l.split(/\s+/);
    let args = rest.join(' ');
    const flags: Record<string, string> = {};
    while (/^--[a-z-]+=\S+/.test(args)) {
      const m = /^--([a-z-]+)=(\S+)\s*/.exec(args)!;
      flags[m[1]!] = m[2]!;
      args = args.slice(m[0].length);
    }
    const kw = keyword!.toUpperCase();
    if (kw === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
      stages.push({ from: m[1]!, ...(m[2] ? { name: m[2] } : {}), instructions: [] });
    } else {
      if (!stages.length) throw new Error(`line ${line}: ${kw} before FROM`);
      stages.at(-1)!.instructions.push({ line, keyword: kw, flags, args });
    }
  }
  return stages;
}

/** Go filepath.Match plus Docker's `**` (any number of directories); `*` also matches dotfiles, unlike shell globs. */
function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
const matchesGlob = (path: string, pattern: string): boolean => globRegExp(pattern).test(path);

/** .dockerignore semantics: the last matching pattern wins; a pattern matching a parent directory matches inside it. */
export function dockerignore(text: string): (rel: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => ({ negate: l.startsWith('!'), pattern: l.replace(/^!/, '').replace(/\/$/, '') }));
  return (rel: string): boolean => {
    const parts = rel.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (prefixes.some((p) => matchesGlob(p, r.pattern))) excluded = !r.negate;
    return !excluded;
  };
}

export interface Replay {
  dir: string;
  workdir: string;
  env: Record<string, string>;
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
}

/** Replays one stage into `dir`. `stages` maps earlier stage names to their replays (COPY --from). */
export function replayStage(
  stage: Stage,
  o: { dir: string; context: string; included: (rel: string) => boolean; stages: Map<string, Replay>; env: Record<string, string>; log: string[] },
): Replay {
  const r: Replay = { dir: o.dir, workdir: '/', env: {} };
  const inside = (p: string): string => join(o.dir, posix.isAbsolute(p) ? p : posix.join(r.workdir, p));
  for (const ins of stage.instructions) {
    switch (ins.keyword) {
      case 'WORKDIR':
        r.workdir = posix.resolve(r.workdir, ins.args);
        mkdirSync(inside('.'), { recursive: true });
        break;
      case 'ENV': {
        const [k, v] = ins.args.split('=');
        r.env[k!] = v!;
        break;
      }
      case 'COPY': {
        const parts = ins.args.split(/\s+/);
        const dest = parts.pop()!;
        const from = ins.flags.from ? o.stages.get(ins.flags.from) : undefined;
        if (ins.flags.from && !from) throw new Error(`line ${ins.line}: no stage ${ins.flags.from}`);
        for (const src of parts) {
          const abs = from ? join(from.dir, src) : join(o.context, src);
          if (!existsSync(abs)) throw new Error(`line ${ins.line}: COPY source ${src} does not exist`);
          if (!from && !o.included(src.replace(/^\.\//, '').replace(/\/$/, ''))) throw new Error(`line ${ins.line}: COPY ${src} is excluded by .dockerignore`);
          const target = dest.endsWith('/') && !statSync(abs).isDirectory() ? join(inside(dest), posix.basename(src)) : inside(dest);
          mkdirSync(dirname(target), { recursive: true });
          const rel = (p: string): string => p.slice(o.context.length + 1);
          cpSync(abs, target, { recursive: true, filter: (p) => from !== undefined || p === abs || o.included(rel(p)) });
        }
        break;
      }
      case 'RUN': {
        const t0 = Date.now();
        const res = spawnSync('sh', ['-c', ins.args], { cwd: inside('.'), env: { ...o.env, ...r.env }, encoding: 'utf8', maxBuffer: 64 << 20 });
        o.log.push(`line ${ins.line}: RUN ${ins.args} (${Date.now() - t0} ms, exit ${res.status})`);
        if (res.status !== 0) throw new Error(`line ${ins.line}: RUN ${ins.args} failed (exit ${res.status}):\n${res.stdout.slice(-2000)}\n${res.stderr.slice(-3000)}`);
        break;
      }
      case 'USER':
        r.user = ins.args;
        break;
      case 'ENTRYPOINT':
        r.entrypoint = JSON.parse(ins.args) as string[];
        break;
      case 'CMD':
        r.cmd = JSON.parse(ins.args) as string[];
        break;
      case 'ARG':
      case 'LABEL':
        break;
      default:
        throw new Error(`line ${ins.line}: ${ins.keyword} is not replayed; teach test/image/dockerfile.ts`);
    }
  }
  return r;
}

/** Every file under `dir`, relative. */
export function listFiles(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(dir, posix.join(rel, e.name)) : [posix.join(rel, e.name)],
  );
}

export const readText = (p: string): string => readFileSync(p, 'utf8');
