// Run as its own process (under setpriv, with a given capability set) by the
// agent-capabilities e2e: restarts one unit the way the agent does on a real
// node — HostCommandExecutor with a host root other than `/`, so through
// `nsenter -t <hostPid> -m -u -i -n -p` — and exits 0, or prints the error and exits 1.
import { HostCommandExecutor } from '../../../src/host/restart.js';

const [hostPid, unit, path] = process.argv.slice(2);
const executor = new HostCommandExecutor('/host', { hostPid: Number(hostPid), env: { PATH: path }, timeoutMs: 20_000 });
executor.restartUnit(unit!).then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);
