// `certrotator node check|rotate`: the offline recovery path. Works on a node's
// filesystem with no API server, so an operator can renew certificates that
// already expired (when nothing else in the cluster can talk to anything).
import { parseArgs } from 'node:util';
import { catalogFor } from '../distributions/index.js';
import { isDistribution, SERVICES_BY_DISTRIBUTION, type NodeRole } from '../distributions/services.js';
import { DEFAULT_WARN_WITHIN_MS, inspectNode } from '../host/inspect.js';
import { detectRoles, type Scope } from '../host/plan.js';
import { FAIL_ON_LEVELS, failsAt, isFailOn, parseWarnWithin } from '../host/status.js';
import { HostCommandExecutor, type RestartExecutor } from '../host/restart.js';
import { openHost, runNodeRotation, NodeRotationError } from '../host/rotation.js';
import { SimulationExecutor } from '../simulation/executor.js';
import { json, table } from './output.js';
import { UsageError, type Command, type Io } from './command.js';

const USAGE = `usage:
  certrotator node check  --distribution rke2|rke [--host-root DIR] [--warn-within D] [--fail-on warning|expired]
                          [-o table|json]
  certrotator node rotate --distribution rke2|rke [--host-root DIR] (--service S [--service S2] | --all)
                          [--no-restart] [-o table|json]

options:
  --host-root DIR        the node's filesystem root (default /; /host in a pod)
  --data-dir DIR         RKE2 data dir on the host (default /var/lib/rancher/rke2)
  --roles R[,R]          etcd,controlplane,worker (default: detected from the files on the node)
  --node-ip IP           the node's IP, where components bound to it answer (RKE2's etcd peer port)
                         (default: this host's addresses, tried in order)
  --loopback-address IP  where the node's 127.0.0.1 listeners are reached (default 127.0.0.1)
  --restarter KIND       host: systemctl/docker, entering PID 1's namespaces when --host-root is not /
                         simulation: a simulated node's control endpoint (--simulation-url URL)
  --verify-timeout SEC   how long restarted components get to come back (default 120)
  --step-timeout SEC     bound of each step that only reads and writes the node's files (plan, prepare,
                         backup, install, the rollback's restore); past it the step fails (default 60)

node check:
  --warn-within D        a file expiring within D is WARNING: days (30d) or a Go duration (720h) (default 30d)
  --fail-on LEVEL        exit 1 when any file is at LEVEL or beyond (default: exit 0 whatever the statuses)
                           warning: WARNING, EXPIRED, NOT YET VALID or ERROR
                           expired: EXPIRED or ERROR
  STATUS per file: OK, WARNING, EXPIRED, NOT YET VALID, ERROR (cannot be read or parsed; the others are still listed)

exit codes: 0 success; 1 a failed rotation, or node check --fail-on matched; 2 usage error
`;

const ROLES: readonly NodeRole[] = ['etcd', 'controlplane', 'worker'];

function common(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'host-root': { type: 'string', default: '/' },
      distribution: { type: 'string' },
      'data-dir': { type: 'string' },
      roles: { type: 'string' },
      'node-ip': { type: 'string' },
      'loopback-address': { type: 'string' },
      output: { type: 'string', short: 'o', default: 'table' },
      service: { type: 'string', multiple: true },
      all: { type: 'boolean', default: false },
      'no-restart': { type: 'boolean', default: false },
      restarter: { type: 'string', default: 'host' },
      'simulation-url': { type: 'string' },
      'verify-timeout': { type: 'string', default: '120' },
      'step-timeout': { type: 'string', default: '60' },
      // node check only; no parseArgs default, so rotate can tell they were given.
      'warn-within': { type: 'string' },
      'fail-on': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const distribution = values.distribution;
  if (!distribution || !isDistribution(distribution)) throw new UsageError('--distribution must be rke2 or rke');
  if (values.output !== 'table' && values.output !== 'json') throw new UsageError('-o must be table or json');
  const catalog = catalogFor(distribution);
  const dataDir = (values['data-dir'] ?? `/${catalog.defaultDataDir}`).replace(/^\/+/, '');
  const host = openHost(catalog, values['host-root'], dataDir);
  let roles: NodeRole[] | undefined;
  if (values.roles) {
    roles = values.roles.split(',').map((r) => r.trim()) as NodeRole[];
    const bad = roles.find((r) => !ROLES.includes(r));
    if (bad) throw new UsageError(`unknown role ${bad} (valid: ${ROLES.join(', ')})`);
  }
  return { values, catalog, dataDir, host, roles, output: values.output };
}

async function check(argv: string[], io: Io): Promise<number> {
  const { values, catalog, dataDir, host, roles: given, output } = common(argv);
  const failOn = values['fail-on'];
  if (failOn !== undefined && !isFailOn(failOn)) throw new UsageError(`--fail-on must be ${FAIL_ON_LEVELS.join(' or ')}, not "${failOn}"`);
  let warnWithinMs = DEFAULT_WARN_WITHIN_MS;
  if (values['warn-within'] !== undefined) {
    try {
      warnWithinMs = parseWarnWithin(values['warn-within']);
    } catch (e) {
      throw new UsageError(`--warn-within: ${(e as Error).message}`);
    }
  }
  const roles = given ?? (await detectRoles(catalog, host, { dataDir }));
  const reports = await inspectNode(catalog, host, roles, dataDir, { warnWithinMs });
  if (output === 'json') io.out(json({ distribution: catalog.distribution, roles, certificates: reports }));
  else {
    io.out(
      table(
        ['SERVICE', 'PATH', 'SUBJECT', 'ISSUER', 'SERIAL', 'NOT AFTER', 'DAYS LEFT', 'STATUS'],
        reports.map((r) => [
          r.service,
          r.path,
          r.error ? `ERROR: ${r.error}` : r.subject,
          r.signedBy ? `${r.issuer} (${r.signedBy})` : r.issuer,
          r.serial,
          r.notAfter,
          r.daysLeft,
          r.status,
        ]),
      ),
    );
  }
  // Like `k3s certificate check`, a report and not a verdict unless asked for one.
  const failing = failOn ? reports.filter((r) => failsAt(r.status, failOn)) : [];
  if (failing.length) io.err(`certrotator: ${failing.length} file(s) at --fail-on ${failOn} or beyond: ${failing.map((r) => `${r.path || r.service} ${r.status}`).join(', ')}\n`);
  return failing.length ? 1 : 0;
}

export function executorFor(kind: string, hostRoot: string, simulationUrl: string | undefined): RestartExecutor {
  if (kind === 'host') return new HostCommandExecutor(hostRoot);
  if (kind === 'simulation') {
    if (!simulationUrl) throw new UsageError('--restarter simulation needs --simulation-url');
    return new SimulationExecutor(simulationUrl);
  }
  throw new UsageError(`unknown --restarter ${kind} (host or simulation)`);
}

async function rotate(argv: string[], io: Io): Promise<number> {
  const { values, catalog, dataDir, host, roles: given, output } = common(argv);
  for (const flag of ['warn-within', 'fail-on'] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} is a node check option`);
  const services = (values.service ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  if (values.all === services.length > 0) throw new UsageError('give either --service S (repeatable) or --all');
  const known = SERVICES_BY_DISTRIBUTION[catalog.distribution];
  const unknown = services.find((s) => !known.includes(s));
  if (unknown) throw new UsageError(`unknown ${catalog.distribution} service "${unknown}" (valid: ${known.join(', ')})`);
  const scope: Scope = values.all ? { all: true } : { services };
  const [verifySeconds, stepSeconds] = (['verify-timeout', 'step-timeout'] as const).map((flag) => {
    const n = Number(values[flag]);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} must be a positive number of seconds`);
    return n;
  }) as [number, number];
  const restart = !values['no-restart'];
  const roles = given ?? (await detectRoles(catalog, host, { dataDir }));
  try {
    const result = await runNodeRotation({
      catalog,
      host,
      scope,
      roles,
      dataDir,
      nodeIP: values['node-ip'],
      loopbackAddress: values['loopback-address'],
      restart,
      ...(restart ? { executor: executorFor(values.restarter, values['host-root'], values['simulation-url']) } : {}),
      verifyTimeoutMs: verifySeconds * 1000,
      localStepTimeoutMs: stepSeconds * 1000,
      onProgress: (e) => io.err(`certrotator: ${e.step}: ${e.message}\n`),
    });
    if (output === 'json') io.out(json({ distribution: catalog.distribution, roles, ...result }));
    else {
      if (result.files.length === 0) io.out(`nothing to rotate: no file of ${'all' in scope ? 'any service' : services.join(', ')} on a node with roles ${roles.join(',')}\n`);
      else
        io.out(
          table(
            ['SERVICE', 'PATH', 'OLD SERIAL', 'NEW SERIAL', 'NOT AFTER', 'SERVED', 'STATUS', 'NOTE'],
            result.files.map((f) => [
              f.service,
              f.path,
              f.oldSerial,
              f.newSerial,
              f.notAfter,
              f.servedVerified ? 'yes' : '-',
              f.status,
              [f.validity && `validity ${f.validity}`, f.signedBy, f.note].filter(Boolean).join('; ') || '-',
            ]),
          ) + (result.backupDir ? `backup: ${result.backupDir}\n` : ''),
        );
      for (const c of result.clusterObjects) io.err(`certrotator: also renew ${c.kind} ${c.namespace}/${c.name}: ${c.why}\n`);
    }
    // In both output formats (JSON has them in `warnings` as well).
    for (const w of result.warnings ?? []) io.err(`certrotator: warning: ${w}\n`);
    return 0;
  } catch (e) {
    if (e instanceof NodeRotationError) {
      if (output === 'json') io.out(json({ error: { step: e.step, message: e.message, rolledBack: e.rolledBack, backupDir: e.backupDir } }));
      io.err(`certrotator: error: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

export const nodeCommand: Command = {
  name: 'node',
  summary: 'check or rotate this node\'s certificates offline (no API server needed)',
  usage: USAGE,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === 'check') return check(rest, io);
    if (sub === 'rotate') return rotate(rest, io);
    throw new UsageError(sub ? `unknown node subcommand ${sub}` : 'node needs a subcommand: check or rotate');
  },
};
