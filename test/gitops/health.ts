// Runs the shipped Argo CD health check (gitops/argocd/.../health.lua) on an
// object with gopher-lua, the Lua 5.1 interpreter Argo CD embeds,
// the way Argo CD does: the object is the global `obj`, the chunk returns hs.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot, REPO_ROOT } from '../cluster/paths.js';

export const HEALTH_DIR = join(REPO_ROOT, 'gitops', 'argocd', 'certrotator.io', 'CertificateRotation');
export const HEALTH_LUA = join(HEALTH_DIR, 'health.lua');
// gopher-lua, the Lua 5.1 Argo CD embeds, built by test/cluster/build-binaries.sh
// (`npm run cluster:build`; npm test builds it first); a system lua5.1 otherwise.
const BUILT_LUA = join(cacheRoot(), 'bin', 'lua');
export const LUA = process.env.CERTROTATOR_LUA ?? (existsSync(BUILT_LUA) ? BUILT_LUA : 'lua5.1');
const NO_LUA = `no Lua 5.1: ${BUILT_LUA} is built by \`npm run cluster:build\` (npm test builds it first)`;

export interface Health {
  status: string;
  message: string;
}

/** A Lua 5.1 string literal: 5.1 has no \u escapes, so non-ASCII goes byte by byte as \ddd. */
function luaString(s: string): string {
  let out = '"';
  for (const byte of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (byte >= 0x20 && byte < 0x7f) out += ch;
    else out += `\\${byte}`;
  }
  return `${out}"`;
}

/** JSON-like value to a Lua table constructor (what gopher-lua's decoding of the object gives). */
export function toLua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'nil';
  if (typeof v === 'string') return luaString(v);
  if (Array.isArray(v)) return `{${v.map(toLua).join(', ')}}`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== null && x !== undefined)
      .map(([k, x]) => `[${luaString(k)}] = ${toLua(x)}`)
      .join(', ')}}`;
  }
  throw new Error(`cannot express ${typeof v} in Lua`);
}

export function luaVersion(): string {
  const r = spawnSync(LUA, ['-v'], { encoding: 'utf8' });
  if (r.error) throw new Error(`${NO_LUA}: ${r.error.message}`);
  return (r.stdout + r.stderr).trim();
}

/** The health Argo CD would show for `obj`. */
export function argoHealth(obj: unknown, script = readFileSync(HEALTH_LUA, 'utf8')): Health {
  const harness = [
    `obj = ${toLua(obj)}`,
    `local chunk = assert(loadstring(${luaString(script)}, "health.lua"))`,
    'local hs = chunk()',
    'io.write(tostring(hs.status), "\\n", tostring(hs.message))',
  ].join('\n');
  const r = spawnSync(LUA, ['-'], { input: harness, encoding: 'utf8' });
  if (r.error) throw new Error(`${NO_LUA}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`health.lua failed: ${r.stderr}`);
  const [status, ...rest] = r.stdout.split('\n');
  return { status: status!, message: rest.join('\n') };
}
