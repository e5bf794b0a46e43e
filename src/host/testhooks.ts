// A test-only pause point: with CERTROTATOR_TEST_PAUSE_AT=<name>, the process
// announces the point on stderr and waits forever, so a test can SIGKILL it at an
// exact step and then check that a resumed run finishes cleanly.
export async function pausePoint(name: string): Promise<void> {
  if (process.env.CERTROTATOR_TEST_PAUSE_AT !== name) return;
  process.stderr.write(`certrotator: paused at ${name}\n`);
  await new Promise<never>(() => setInterval(() => undefined, 1 << 30));
}

// A test-only broken renewal: with CERTROTATOR_TEST_FAULT=drop-san:<catalog id>,
// that file's renewed certificate has no subjectAltName, so a test can prove
// that a renewal the real components reject is caught and rolled back.
export function dropsSubjectAltName(catalogId: string): boolean {
  return process.env.CERTROTATOR_TEST_FAULT === `drop-san:${catalogId}`;
}

// A test-only defective renewal: with CERTROTATOR_TEST_FAULT=foreign-key:<catalog
// id>, that file's renewed certificate comes with a key that is not its own, as
// an encoder bug would make it, so a test can prove the check before install
// stops the node with nothing written.
export function givesForeignKey(catalogId: string): boolean {
  return process.env.CERTROTATOR_TEST_FAULT === `foreign-key:${catalogId}`;
}

// A test-only write failure: with CERTROTATOR_TEST_FAULT=write-error:<CODE>:<file
// name>[:<times>] (CODE ENOSPC, EACCES or EIO), the first <times> (default 1)
// atomic writes of that file fail as the disk would, so a test can prove an
// install that fails part-way is rolled back, and what a failed rollback says.
const writeFaultsUsed = new Map<string, number>();
const WRITE_ERRORS: Record<string, string> = { ENOSPC: 'no space left on device', EACCES: 'permission denied', EIO: 'i/o error' };

export function writeFault(fileName: string): NodeJS.ErrnoException | undefined {
  const v = process.env.CERTROTATOR_TEST_FAULT;
  const m = v ? /^write-error:(ENOSPC|EACCES|EIO):([^:]+)(?::(\d+))?$/.exec(v) : null;
  if (!v || !m || m[2] !== fileName) return undefined;
  const used = writeFaultsUsed.get(v) ?? 0;
  if (used >= Number(m[3] ?? 1)) return undefined;
  writeFaultsUsed.set(v, used + 1);
  const e = new Error(`${m[1]}: ${WRITE_ERRORS[m[1]!]}, write '${fileName}'`) as NodeJS.ErrnoException;
  e.code = m[1];
  return e;
}

// A test-only hung disk: with CERTROTATOR_TEST_FAULT=write-stall:<ms>:<file name>
// the first atomic replace of that file (install, rollback, journal saves), and
// with new-file-stall:<ms>:<file name> the first new file of that name (the
// backup's staged copies and first journal), waits <ms> before writing, as a
// write to a hung filesystem does, so a test can prove a step's deadline fails
// the node and that the late write does not land over the rollback.
const stallsUsed = new Set<string>();

export async function writeStall(kind: 'write' | 'new-file', fileName: string): Promise<void> {
  const v = process.env.CERTROTATOR_TEST_FAULT;
  const m = v ? /^(write|new-file)-stall:(\d+):([^:]+)$/.exec(v) : null;
  if (!v || !m || m[1] !== kind || m[3] !== fileName || stallsUsed.has(v)) return;
  stallsUsed.add(v);
  await new Promise((r) => setTimeout(r, Number(m[2])));
}
