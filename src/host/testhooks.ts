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
