// `certrotator controller`: the leader-elected controller that drives
// CertificateRotations (src/controller/run.ts).
import { parseArgs } from 'node:util';
import { runController } from '../controller/run.js';
import { UsageError, type Command, type Io } from './command.js';

const USAGE = `usage:
  certrotator controller [--kubeconfig FILE] [--metrics-addr HOST:PORT] [--leader-elect true|false]
                         [--lease-namespace NS] [--lease-name NAME] [--identity ID] [--log-level LEVEL]
                         [--cache-sync-timeout SEC]

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
`;

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
      },
    });
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
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
        signal: abort.signal,
      });
    } finally {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    }
  },
};
