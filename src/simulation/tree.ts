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
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip(r)) continue;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) {
        const abs = join(root, r);
        const [data, st] = await Promise.all([fs.readFile(abs), fs.stat(abs)]);
        out.set(r, { sha256: createHash('sha256').update(data).digest('hex'), mode: st.mode & 0o7777 });
      } else out.set(r, { sha256: `link:${e.isSymbolicLink() ? await fs.readlink(join(root, r)) : '?'}`, mode: 0 });
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
