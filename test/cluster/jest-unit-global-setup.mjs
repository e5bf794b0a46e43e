// Claims the run's loopback network (src/simulation/loopback.ts) once, in jest's
// own process: every test file and every process they start then share it, and
// the claim is released when jest exits. (A claim made inside a test file would
// be one per file, and jest's sandboxed `process` never tells it about the exit.)
import { tsImport } from 'tsx/esm/api';

export default async function () {
  const { runNet } = await tsImport('../../src/simulation/loopback.ts', import.meta.url);
  runNet();
}
