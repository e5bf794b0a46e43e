// The journal makes a node rotation resumable: it lives inside the backup
// directory and is rewritten atomically after every step, so a process killed at
// any point finds on restart exactly which step was last completed. New keys are
// staged next to it (0600, in a 0700 dir) before any live file is replaced, so a
// resumed run installs the same material instead of renewing twice.
import { posix } from 'node:path';
import type { NodeRole, ServedPort } from '../distributions/types.js';
import type { SignedBy } from './issuer.js';
import type { HostRoot } from './root.js';

export const JOURNAL_DIR = 'certrotator';
export const JOURNAL_FILE = 'journal.json';

export type JournalStep =
  | 'staged' // backup complete, new material staged, nothing live changed yet
  | 'installing'
  | 'installed'
  | 'restarting'
  | 'restarted'
  | 'done'
  | 'rolling-back'
  | 'rolled-back'
  // Failed with onFailure Halt: left as it is for a person, never rolled back or resumed.
  | 'halted';

export interface OwnerAndMode {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

export interface JournalFile {
  readonly service: string;
  readonly id: string;
  // The catalog entry this file was planned from.
  readonly specId: string;
  readonly renewal: string;
  readonly cert?: string;
  readonly key?: string;
  readonly certMeta?: OwnerAndMode;
  readonly keyMeta?: OwnerAndMode;
  // Host-relative paths of the original bytes inside the backup dir.
  readonly backupCert?: string;
  readonly backupKey?: string;
  // Host-relative paths of the staged replacement inside the journal dir.
  readonly stagedCert?: string;
  readonly stagedKey?: string;
  readonly trigger?: string;
  readonly caCert?: string;
  readonly oldSerial?: string;
  newSerial?: string;
  notAfter?: string;
  servedVerified?: boolean;
  // Bare numbers in journals of earlier versions.
  readonly servedOn?: readonly (ServedPort | number)[];
  // The CA file the served certificate must verify against (for a file made at
  // start, set again from the new file once it is there).
  servedCa?: string;
  // remove-to-regenerate: the CA that signs the file when the distribution makes
  // it, and who signed the file (the old one; after the restart the new one).
  readonly distributionCa?: string;
  signedBy?: SignedBy;
  // sign: the validity used and where it came from (catalog + service environment).
  readonly validity?: string;
  // trigger: the file was not on disk when the run was planned; only the trigger
  // was written, and a rollback removes the file the distribution made.
  readonly missing?: boolean;
}

export interface Journal {
  readonly version: 1;
  readonly runId: string;
  readonly distribution: string;
  readonly scope: string;
  readonly roles: readonly NodeRole[];
  readonly restart: boolean;
  readonly backupDir: string;
  readonly startedAt: string;
  step: JournalStep;
  // Marker files written for the restart (force-restart), removed on rollback.
  markers: string[];
  // Set once a restart began: a rollback must then restart again to load the old files.
  restartAttempted?: boolean;
  files: JournalFile[];
  failure?: { step: string; message: string };
  // Things the operator should know that do not fail the run (a stale embedded copy).
  warnings?: string[];
  updatedAt?: string;
}

export function journalPath(backupDir: string): string {
  return posix.join(backupDir, JOURNAL_DIR, JOURNAL_FILE);
}

// `signal`: a save cut off by a step's deadline never lands (a late write of
// "installed" must not replace the rollback's "rolling-back").
export async function saveJournal(host: HostRoot, journal: Journal, signal?: AbortSignal): Promise<void> {
  journal.updatedAt = new Date().toISOString();
  await host.writeFileAtomic(journalPath(journal.backupDir), `${JSON.stringify(journal, null, 2)}\n`, 0o600, undefined, signal);
}

export class UnreadableJournalError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly movedTo: string,
  ) {
    super(`${path}: ${reason} (moved aside to ${movedTo})`);
    this.name = 'UnreadableJournalError';
  }
}

// A journal that does not parse (a disk that filled up, a crash on a filesystem
// that lost the write) is moved aside, so it is reported once and does not block
// every later run on the node.
export async function readJournal(host: HostRoot, backupDir: string): Promise<Journal | undefined> {
  const path = journalPath(backupDir);
  if (!(await host.exists(path))) return undefined;
  let journal: Journal;
  try {
    journal = JSON.parse((await host.readFile(path)).toString('utf8')) as Journal;
    if (journal?.version !== 1) throw new Error(`unknown journal version ${String(journal?.version)}`);
  } catch (e) {
    const movedTo = `${path}.unreadable-${Math.floor(Date.now() / 1000)}`;
    await host.rename(path, movedTo);
    throw new UnreadableJournalError(path, (e as Error).message, movedTo);
  }
  return journal;
}

export const isFinished = (j: Journal): boolean => j.step === 'done' || j.step === 'rolled-back' || j.step === 'halted';
