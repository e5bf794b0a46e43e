// Backups are made before anything live changes, and made whole or not at all:
// built in a hidden sibling dir and renamed into place, so a backup dir that
// exists is complete and a half-built one is recognisably ours to delete.
import { promises as fs } from 'node:fs';
import { posix } from 'node:path';
import { fillPath } from '../distributions/index.js';
import type { BackupLayout } from '../distributions/types.js';
import { fsyncDir, fsyncTree, type HostRoot } from './root.js';

export const PARTIAL_PREFIX = '.certrotator-partial-';

export interface BackupLocation {
  readonly parent: string;
  readonly name: string;
  // Whole directory copied first (RKE2's server/tls), if any.
  readonly copyDir?: string;
}

// Where a backup of this node goes; also where unfinished journals are looked for.
export async function backupParents(layout: BackupLayout, host: HostRoot, vars: Record<string, string>): Promise<string[]> {
  if (layout.kind === 'files-in-scope') return [layout.parent];
  const dir = fillPath(layout.dir, vars);
  return (await host.exists(dir)) ? [posix.dirname(dir)] : [fillPath(layout.fallbackParent, vars)];
}

export async function chooseBackupLocation(layout: BackupLayout, host: HostRoot, vars: Record<string, string>, now: Date): Promise<BackupLocation> {
  const [parent] = (await backupParents(layout, host, vars)) as [string];
  const copyDir = layout.kind === 'copy-dir-plus-flattened' && (await host.exists(fillPath(layout.dir, vars))) ? fillPath(layout.dir, vars) : undefined;
  let unix = Math.floor(now.getTime() / 1000);
  while (await host.exists(posix.join(parent, `${layout.prefix}${unix}`))) unix++;
  return { parent, name: `${layout.prefix}${unix}`, ...(copyDir ? { copyDir } : {}) };
}

// Copies a directory tree keeping modes (and owners when we may), like `cp -a`.
export async function copyTree(src: string, dst: string): Promise<void> {
  const st = await fs.stat(src);
  await fs.mkdir(dst, { mode: st.mode & 0o7777 });
  for (const entry of await fs.readdir(src, { withFileTypes: true })) {
    const s = posix.join(src, entry.name);
    const d = posix.join(dst, entry.name);
    if (entry.isDirectory()) await copyTree(s, d);
    else if (entry.isSymbolicLink()) await fs.symlink(await fs.readlink(s), d);
    else if (entry.isFile()) await copyFileKeepingMeta(s, d);
  }
  await fs.chmod(dst, st.mode & 0o7777);
}

export async function copyFileKeepingMeta(src: string, dst: string): Promise<void> {
  const st = await fs.stat(src);
  await fs.copyFile(src, dst, fs.constants.COPYFILE_EXCL);
  await fs.chmod(dst, st.mode & 0o7777);
  await fs.chown(dst, st.uid, st.gid).catch(() => undefined);
  const fh = await fs.open(dst, 'r');
  await fh.sync();
  await fh.close();
}

export async function removeStalePartials(host: HostRoot, parent: string): Promise<void> {
  for (const name of await host.list(parent)) {
    if (name.startsWith(PARTIAL_PREFIX)) {
      await host.assertWritable(posix.join(parent, name));
      await fs.rm(await host.resolve(posix.join(parent, name)), { recursive: true, force: true });
    }
  }
}

export async function publishBackup(host: HostRoot, loc: BackupLocation, partialAbs: string): Promise<string> {
  const finalRel = posix.join(loc.parent, loc.name);
  const finalAbs = await host.assertWritable(finalRel);
  // Every file in it was fsynced as it was written; now the directories, so the
  // renamed backup never names an entry that a crash loses.
  await fsyncTree(partialAbs);
  await fs.rename(partialAbs, finalAbs);
  await fsyncDir(posix.dirname(finalAbs));
  return finalRel;
}
