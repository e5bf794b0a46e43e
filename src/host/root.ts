// Every path certrotator touches on a node goes through a HostRoot: the node's
// filesystem as mounted at `root` (/ for the CLI on the node, /host in the agent's
// pod). Symlinks are resolved the way the host itself would (an absolute link
// target is relative to the host root, not to our container), and nothing may
// resolve outside the root or be written outside the catalog's directories.
import { constants, promises as fs } from 'node:fs';
import { dirname, join, posix, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pausePoint, writeFault, writeStall } from './testhooks.js';

export class HostPathError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'HostPathError';
  }
}

export interface FileOwner {
  readonly uid: number;
  readonly gid: number;
}

const MAX_SYMLINKS = 40;
const MAX_FILE_BYTES = 1024 * 1024;

export class HostRoot {
  readonly root: string;
  private readonly writable: readonly string[];

  // `writableDirs` are host-relative directories (no placeholders) under which writes are allowed.
  constructor(root: string, writableDirs: readonly string[] = []) {
    this.root = root.replace(/\/+$/, '') || '/';
    this.writable = writableDirs.map((d) => normalizeRelative(d));
  }

  // Host-relative path → absolute path on this machine, all symlinks resolved inside the root.
  async resolve(rel: string): Promise<string> {
    const parts = normalizeRelative(rel).split('/').filter(Boolean);
    const resolved: string[] = [];
    let hops = 0;
    while (parts.length) {
      const part = parts.shift()!;
      if (part === '..') {
        if (!resolved.length) throw new HostPathError(rel, 'resolves outside the host root');
        resolved.pop();
        continue;
      }
      const candidate = [...resolved, part];
      const abs = this.abs(candidate.join('/'));
      let st;
      try {
        st = await fs.lstat(abs);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          resolved.push(part, ...parts);
          parts.length = 0;
          break;
        }
        throw e;
      }
      if (st.isSymbolicLink()) {
        if (++hops > MAX_SYMLINKS) throw new HostPathError(rel, 'too many symlinks');
        const target = await fs.readlink(abs);
        const targetParts = target.split('/').filter(Boolean);
        if (target.startsWith('/')) resolved.length = 0;
        parts.unshift(...targetParts);
      } else {
        resolved.push(part);
      }
    }
    return this.abs(resolved.join('/'));
  }

  // Host-relative path with symlinks resolved (for the writable-dir check).
  async canonical(rel: string): Promise<string> {
    const abs = await this.resolve(rel);
    const base = this.root === '/' ? '' : this.root;
    return abs.slice(base.length).replace(/^\/+/, '');
  }

  // A writable entry whose last segment ends in `*` (server/tls-*): its parent
  // resolved like any other path, the name prefix kept as it is.
  private async canonicalPattern(d: string): Promise<string> {
    if (!d.endsWith('*')) return this.canonical(d);
    const parent = posix.dirname(d);
    return posix.join(await this.canonical(parent === '.' ? '' : parent), posix.basename(d));
  }

  private abs(rel: string): string {
    return this.root === '/' ? `/${rel}` : join(this.root, rel);
  }

  async assertWritable(rel: string): Promise<string> {
    const canon = await this.canonical(rel);
    // The allowed dirs may themselves be symlinks (a data dir moved to another disk):
    // compare resolved with resolved.
    const allowed = (await Promise.all(this.writable.map(async (d) => [d, await this.canonicalPattern(d)]))).flat().filter((d) => d !== '');
    const ok = allowed.some((d) => (d.endsWith('*') ? matchesPrefixPattern(canon, d) : canon === d || canon.startsWith(`${d}/`)));
    if (!ok) throw new HostPathError(rel, `refusing to write outside ${this.writable.join(', ') || '(no writable dirs)'}`);
    return this.abs(canon);
  }

  async exists(rel: string): Promise<boolean> {
    try {
      await fs.stat(await this.resolve(rel));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  // Opened without following a link: resolve() looked at every component, so a
  // link at the end now appeared since (a race) and is refused, not followed out
  // of the root. Certificates, keys, kubeconfigs and the journal are small; a file
  // over 1 MiB is not one of them and is not read into memory.
  async readFile(rel: string): Promise<Buffer> {
    const abs = await this.resolve(rel);
    let fh;
    try {
      fh = await fs.open(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new HostPathError(rel, 'became a symbolic link while being read; refusing to follow it');
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new HostPathError(rel, 'is not a regular file');
      if (st.size > MAX_FILE_BYTES) throw new HostPathError(rel, `is ${st.size} bytes; a certificate, key or configuration file is at most 1 MiB, refusing to read it`);
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  async list(relDir: string): Promise<string[]> {
    try {
      return (await fs.readdir(await this.resolve(relDir))).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  async stat(rel: string) {
    return fs.stat(await this.resolve(rel));
  }

  // Atomic replace: a reader (or a crash) sees the old file or the new one, never
  // half of either. Temp file in the same directory (same filesystem for rename),
  // created with the final mode so a key is never readable by others even briefly.
  // `signal`: once aborted (a step's deadline passed), the write never renames
  // its temp file into place, even when the disk answers late.
  async writeFileAtomic(rel: string, data: string | Buffer, mode: number, owner?: FileOwner, signal?: AbortSignal): Promise<void> {
    const target = await this.assertWritable(rel);
    await writeAtomic(target, data, mode, owner, signal);
  }

  async remove(rel: string): Promise<void> {
    const target = await this.assertWritable(rel);
    await fs.rm(target, { force: true });
    await fsyncDir(dirname(target));
  }

  async rename(fromRel: string, toRel: string): Promise<void> {
    const [from, to] = [await this.assertWritable(fromRel), await this.assertWritable(toRel)];
    await fs.rename(from, to);
    await fsyncDir(dirname(to));
  }

  async mkdir(rel: string, mode = 0o700): Promise<string> {
    const target = await this.assertWritable(rel);
    await fs.mkdir(target, { recursive: true, mode });
    return target;
  }

  // Temp files left by a process killed between write and rename.
  async removeStaleTempFiles(relDir: string): Promise<void> {
    for (const name of await this.list(relDir)) {
      if (name.includes(TEMP_MARK)) await this.remove(posix.join(relDir, name));
    }
  }
}

export const TEMP_MARK = '.certrotator-tmp-';

// `dir/prefix*` matches dir/prefixANYTHING and everything under it, never dir itself
// or a sibling without the prefix.
function matchesPrefixPattern(canon: string, pattern: string): boolean {
  const [dir, prefix] = [posix.dirname(pattern), posix.basename(pattern).slice(0, -1)];
  const rest = dir === '.' ? canon : canon.startsWith(`${dir}/`) ? canon.slice(dir.length + 1) : undefined;
  if (rest === undefined) return false;
  const name = rest.split('/')[0]!;
  return name.length > prefix.length && name.startsWith(prefix);
}

export async function writeAtomic(target: string, data: string | Buffer, mode: number, owner?: FileOwner, signal?: AbortSignal): Promise<void> {
  const dir = dirname(target);
  const name = target.split(sep).pop()!;
  const tmp = join(dir, `.${name}${TEMP_MARK}${randomBytes(6).toString('hex')}`);
  const fh = await fs.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode);
  try {
    const fault = writeFault(name);
    if (fault) throw fault;
    await writeStall('write', name);
    await fh.writeFile(data);
    await fh.chmod(mode);
    if (owner) await chownKeepingOurs(fh, owner);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw e;
  } finally {
    await fh.close().catch(() => undefined);
  }
  await pausePoint(`temp-written:${name}`);
  // Checked in the same tick as the rename is issued: nothing can abort in between.
  if (signal?.aborted) {
    await fs.rm(tmp, { force: true });
    throw signal.reason;
  }
  await fs.rename(tmp, target);
  await fsyncDir(dir);
}

async function chownKeepingOurs(fh: fs.FileHandle, owner: FileOwner): Promise<void> {
  try {
    await fh.chown(owner.uid, owner.gid);
  } catch (e) {
    // Unprivileged (tests, demo): only an error if we were asked to change owner.
    const self = { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
    if ((e as NodeJS.ErrnoException).code !== 'EPERM' || owner.uid !== self.uid) throw e;
  }
}

/** A new file whose bytes are on disk when this returns (fsync), before anything renames or names it. */
export async function writeFileDurable(path: string, data: string | Buffer, mode: number): Promise<void> {
  const fh = await fs.open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode);
  try {
    await writeStall('new-file', path.split(sep).pop()!);
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync every directory of a tree, deepest first: its entries are on disk before the tree is renamed into place. */
export async function fsyncTree(dir: string): Promise<void> {
  for (const e of await fs.readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await fsyncTree(join(dir, e.name));
  await fsyncDir(dir);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function normalizeRelative(p: string): string {
  if (p.startsWith('/')) p = p.replace(/^\/+/, '');
  const norm = posix.normalize(p || '.');
  if (norm === '..' || norm.startsWith('../')) throw new HostPathError(p, 'resolves outside the host root');
  return norm === '.' ? '' : norm.replace(/\/$/, '');
}
