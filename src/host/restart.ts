// Restarting what reads the renewed files, the distribution's way. The plan comes
// from the catalog; an executor carries it out on a real host (systemctl/docker,
// inside the host's namespaces when we run in a pod) or on a simulated one.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fillPath } from '../distributions/index.js';
import type { DistributionCatalog, NodeRole, RestartPlan } from '../distributions/types.js';
import { pausePoint } from './testhooks.js';
import type { HostRoot } from './root.js';

const execFileAsync = promisify(execFile);

export interface RestartExecutor {
  stopUnit(unit: string): Promise<void>;
  startUnit(unit: string): Promise<void>;
  restartUnit(unit: string): Promise<void>;
  // Restarts those of `containers` that exist on this node, each with its stop
  // timeout when one is given; returns the ones restarted.
  restartContainers(containers: readonly string[], stopTimeoutSeconds?: Readonly<Record<string, number>>): Promise<string[]>;
}

export class RestartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestartError';
  }
}

export function restartPlanFor(catalog: DistributionCatalog, roles: readonly NodeRole[]): RestartPlan {
  const rule = catalog.restart.find((r) => r.whenRoleIn.some((role) => roles.includes(role)));
  if (!rule) throw new RestartError(`no restart rule for roles ${roles.join(',')}`);
  return rule.plan;
}

export interface RestartOutcome {
  // Components whose health probes must pass afterwards; undefined = every probe for the node's roles.
  readonly components?: readonly string[];
  readonly markers: readonly string[];
}

export async function performRestart(
  plan: RestartPlan,
  executor: RestartExecutor,
  host: HostRoot,
  vars: Record<string, string>,
  consumers: readonly string[],
  onMarkers: (markers: string[]) => Promise<void>,
): Promise<RestartOutcome> {
  switch (plan.kind) {
    case 'systemd-stop-start': {
      const markers = plan.markerFiles.map((m) => fillPath(m, vars));
      await executor.stopUnit(plan.unit);
      await onMarkers(markers);
      for (const m of markers) await host.writeFileAtomic(m, '', 0o600);
      // A test kills the process here, with the unit stopped: the resumed run must start it.
      await pausePoint('unit-stopped');
      await executor.startUnit(plan.unit);
      return { markers };
    }
    case 'systemd-restart':
      await executor.restartUnit(plan.unit);
      return { markers: [] };
    case 'docker-restart': {
      const restarted = await executor.restartContainers([...new Set(consumers)], plan.stopTimeoutSeconds);
      return { components: restarted, markers: [] };
    }
  }
}

// Runs a command on the host: directly when our root is the host's, otherwise in
// PID 1's namespaces (the agent's pod shares the host PID namespace) so systemctl
// talks to the host's systemd and docker to the host's daemon.
export class HostCommandExecutor implements RestartExecutor {
  constructor(
    private readonly hostRoot: string,
    // hostPid: the process whose namespaces are the host's: PID 1 of the host's
    // PID namespace (the pod has hostPID). Only a test gives another, to prove
    // the chart's capability set is enough to enter them (agent-capabilities e2e).
    private readonly options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; hostPid?: number } = {},
  ) {}

  private async run(argv: string[]): Promise<string> {
    const full = this.hostRoot === '/' ? argv : ['nsenter', '-t', String(this.options.hostPid ?? 1), '-m', '-u', '-i', '-n', '-p', '--', ...argv];
    try {
      const { stdout } = await execFileAsync(full[0]!, full.slice(1), {
        timeout: this.options.timeoutMs ?? 300_000,
        ...(this.options.env ? { env: this.options.env } : {}),
      });
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new RestartError(`${argv.join(' ')} failed: ${(err.stderr || err.message).trim().split('\n').slice(-3).join(' | ')}`);
    }
  }

  async stopUnit(unit: string): Promise<void> {
    await this.run(['systemctl', 'stop', unit]);
  }

  async startUnit(unit: string): Promise<void> {
    await this.run(['systemctl', 'start', unit]);
  }

  async restartUnit(unit: string): Promise<void> {
    // Rancher resets a failed unit first, or restart may be refused by start limits.
    await this.run(['systemctl', 'reset-failed', unit]).catch(() => undefined);
    await this.run(['systemctl', 'restart', unit]);
  }

  async restartContainers(containers: readonly string[], stopTimeoutSeconds: Readonly<Record<string, number>> = {}): Promise<string[]> {
    const present = (await this.run(['docker', 'ps', '-a', '--format', '{{.Names}}'])).split('\n').map((s) => s.trim());
    const targets = containers.filter((c) => present.includes(c));
    for (const c of targets) {
      const t = stopTimeoutSeconds[c];
      await this.run(['docker', 'restart', ...(t !== undefined ? ['-t', String(t)] : []), c]);
    }
    return targets;
  }
}
