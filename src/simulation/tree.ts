// Whole-tree snapshots for tests and the demo: every regular file's sha256 and
// mode, so "nothing else changed" is a comparison, not a hope.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';

export interface TreeEntry {
  readonly sha256: string;
  readonly mode: number;
}

export async function snapshotTree(root: string, skip: (rel: string) => boolean = () => false): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  // An entry below the root that is removed while the walk reaches it (a write
  // still under way cleaning up after itself) is simply not in the snapshot.
  const vanished = (err: unknown): undefined => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  };
  const walk = async (rel: string): Promise<void> => {
    const entries = await fs.readdir(join(root, rel), { withFileTypes: true }).catch((e: unknown) => (rel ? vanished(e) : Promise.reject(e)));
    for (const e of entries ?? []) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip(r)) continue;
      const abs = join(root, r);
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) {
        const read = await Promise.all([fs.readFile(abs), fs.stat(abs)]).catch(vanished);
        if (read) out.set(r, { sha256: createHash('sha256').update(read[0]).digest('hex'), mode: read[1].mode & 0o7777 });
      } else {
        const target = e.isSymbolicLink() ? await fs.readlink(abs).catch(vanished) : '?';
        if (target !== undefined) out.set(r, { sha256: `link:${target}`, mode: 0 });
      }
    }
  };
  await walk('');
  return out;
}

export function changedPaths(before: Map<string, TreeEntry>, after: Map<string, TreeEntry>): string[] {
  const paths = new Set([...before.keys(), ...after.keys()]);
  return [...paths].filter((p) => before.get(p)?.sha256 !== after.get(p)?.sha256 || before.get(p)?.mode !== after.get(p)?.mode).sort();
}

export async function copyDir(src: string, dst: string): Promise<void> {
  await fs.cp(src, dst, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
}
