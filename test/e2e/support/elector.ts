// One leader-election candidate as its own process, so the e2e test can
// SIGKILL a leader for real. Prints one JSON line per event on stdout.
// Usage: node --import tsx test/e2e/support/elector.ts <namespace> <lease> <identity>
import { LeaderElector } from '../../../src/kube/leader-election.js';
import { loadKubeConfig } from '../../../src/kube/client.js';

const [namespace, name, identity] = process.argv.slice(2);
if (!namespace || !name || !identity) {
  process.stderr.write('usage: elector.ts <namespace> <lease> <identity>\n');
  process.exit(2);
}
const emit = (event: string, extra: Record<string, unknown> = {}): void =>
  void process.stdout.write(`${JSON.stringify({ event, identity, t: Date.now(), ...extra })}\n`);

const elector = new LeaderElector({
  kc: loadKubeConfig(),
  namespace,
  name,
  identity,
  onStartedLeading: () => emit('started'),
  onStoppedLeading: (reason) => emit('stopped', { reason }),
  onNewLeader: (leader) => emit('leader', { leader }),
  // Each failed acquire attempt, so a test can see a standby's retry rhythm.
  logger: { info() {}, warn() {}, debug: (_obj, msg) => msg.startsWith('lease held by another') && emit('attempt') },
});

let stopping = false;
process.once('SIGTERM', () => {
  stopping = true;
  void elector.stop().then(() => {
    emit('exiting');
    process.exit(0);
  });
});
emit('running', { pid: process.pid });
void elector.run().then(() => {
  // Leadership lost (renew deadline passed): exit like a client-go controller.
  if (!stopping) process.exit(1);
});
