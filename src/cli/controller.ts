// `certrotator controller`: the leader-elected controller that drives
// CertificateRotations (src/controller/run.ts).
import { parseArgs } from 'node:util';
import { runController } from '../controller/run.js';
import { inventoryInterval, UsageError, type Command, type Io } from './command.js';

const USAGE = `usage:
  certrotator controller [--kubeconfig FILE] [--metrics-addr HOST:PORT] [--leader-elect true|false]
                         [--lease-namespace NS] [--lease-name NAME] [--identity ID] [--log-level LEVEL]
                         [--cache-sync-timeout SEC] [--leader-elect-lease-duration SEC]
                         [--leader-elect-renew-deadline SEC] [--leader-elect-retry-period SEC]
                         [--inventory-interval DURATION]

options:
  --kubeconfig FILE        kubeconfig (default: $KUBECONFIG, then the in-cluster service account)
  --metrics-addr ADDR      serve /metrics, /healthz, /readyz on ADDR (default :8080; port 0 picks one; "off" disables)
  --leader-elect BOOL      hold a Lease so only one replica reconciles (default true)
  --lease-namespace NS     namespace of the Lease (default $POD_NAMESPACE, else certrotator-system)
  --lease-name NAME        name of the Lease (default certrotator-controller)
  --identity ID            this replica's identity in the Lease (default <hostname>_<random>)
  --log-level LEVEL        pino level: debug, info, warn, error (default info, or $LOG_LEVEL)
  --cache-sync-timeout SEC how long the leader waits for its caches (default 60); past it, it
                           gives up the Lease and exits 1, so a standby takes over
  --leader-elect-lease-duration SEC  how long a standby waits after the leader's last renewal
                           before it takes over (default 15; kube-controller-manager's flag of
                           the same name). Shorter: faster takeover after a crash, more Lease writes
  --leader-elect-renew-deadline SEC  the leader gives up (and exits) when it could not renew for
                           this long (default 10; less than the lease duration)
  --leader-elect-retry-period SEC    between attempts to acquire or renew (default 2)
  --inventory-interval DURATION  how often the leader reads the distribution's certificate Secrets
                           (RKE2: kube-system/rke2-serving) for /metrics (default 6h, and once when
                           it starts leading; 0 turns it off)
`;

function seconds(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number of seconds`);
  return n * 1000;
}

function bool(flag: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new UsageError(`${flag} must be true or false`);
}

export const controllerCommand: Command = {
  name: 'controller',
  summary: 'run the CertificateRotation controller (leader-elected)',
  usage: USAGE,
  async run(argv: string[], _io: Io): Promise<number> {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        kubeconfig: { type: 'string' },
        'metrics-addr': { type: 'string', default: ':8080' },
        'leader-elect': { type: 'string', default: 'true' },
        'lease-namespace': { type: 'string', default: process.env.POD_NAMESPACE ?? 'certrotator-system' },
        'lease-name': { type: 'string', default: 'certrotator-controller' },
        identity: { type: 'string' },
        'log-level': { type: 'string' },
        'cache-sync-timeout': { type: 'string', default: '60' },
        'leader-elect-lease-duration': { type: 'string', default: '15' },
        'leader-elect-renew-deadline': { type: 'string', default: '10' },
        'leader-elect-retry-period': { type: 'string', default: '2' },
        'inventory-interval': { type: 'string', default: '6h' },
      },
    });
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    const election = {
      leaseDurationMs: seconds('--leader-elect-lease-duration', values['leader-elect-lease-duration']),
      renewDeadlineMs: seconds('--leader-elect-renew-deadline', values['leader-elect-renew-deadline']),
      retryPeriodMs: seconds('--leader-elect-retry-period', values['leader-elect-retry-period']),
    };
    // client-go's rules: otherwise a leader could still act after a standby thinks its lease expired.
    if (!(election.leaseDurationMs > election.renewDeadlineMs)) throw new UsageError('--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline');
    if (!(election.renewDeadlineMs > election.retryPeriodMs * 1.2)) throw new UsageError('--leader-elect-renew-deadline must be greater than 1.2 × --leader-elect-retry-period');
    const syncSeconds = Number(values['cache-sync-timeout']);
    if (!Number.isFinite(syncSeconds) || syncSeconds <= 0) throw new UsageError('--cache-sync-timeout must be a positive number of seconds');
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    const addr = values['metrics-addr'];
    try {
      return await runController({
        kubeconfig: values.kubeconfig,
        metricsAddr: addr === 'off' ? undefined : addr,
        leaderElect: bool('--leader-elect', values['leader-elect']),
        leaseNamespace: values['lease-namespace'],
        leaseName: values['lease-name'],
        identity: values.identity,
        logLevel: values['log-level'],
        cacheSyncTimeoutMs: syncSeconds * 1000,
        election,
        inventoryIntervalMs: inventoryInterval(values['inventory-interval']),
        signal: abort.signal,
      });
    } finally {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    }
  },
};
