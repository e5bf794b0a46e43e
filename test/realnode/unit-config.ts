// What the per-node stand-ins (systemctl, the rke2 unit) need to know about
// their node; written by the harness into <nodeDir>/unit.json.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRunning, type RecordedProcess } from '../cluster/processes.js';
import type { StaticPod } from './rke2-layout.js';

export interface UnitConfig {
  readonly unit: 'rke2-server' | 'rke2-agent';
  readonly nodeName: string;
  readonly nodeIP: string;
  // The node's RKE2 data dir (absolute) and its /etc/rancher/rke2/rke2.yaml.
  readonly dataDir: string;
  readonly adminKubeconfig: string;
  readonly binDir: string;
  // Where the unit keeps its pid, logs and the static pods' pid files.
  readonly runDir: string;
  // Supervisor addresses (https://IP:9345) an agent fetches its certificates from.
  readonly servers: readonly string[];
  readonly staticPods: readonly StaticPod[];
  // The supervisor certificate's SANs (config.SANs: tls-san, node name and IPs, loopback, service IP).
  readonly sans: { readonly dns: readonly string[]; readonly ips: readonly string[] };
}

export const unitConfigPath = (nodeDir: string): string => join(nodeDir, 'unit.json');

export function readUnitConfig(nodeDir: string): UnitConfig {
  return JSON.parse(readFileSync(unitConfigPath(nodeDir), 'utf8')) as UnitConfig;
}

// Where the unit and its static pods leave their PIDs and logs (<nodeDir>/run).
export const unitPidFile = (c: UnitConfig): string => join(c.runDir, 'unit.pid');
export const unitReadyFile = (c: UnitConfig): string => join(c.runDir, 'unit.ready');
export const unitLogFile = (c: UnitConfig): string => join(c.runDir, 'logs', `${c.unit}.log`);
export const podPidFile = (c: UnitConfig, pod: string): string => join(c.runDir, 'pods', `${pod}.pid`);

// The static pod's process, if its recorded PID still runs the pod's binary.
export function runningPod(c: UnitConfig, pod: string): RecordedProcess | undefined {
  const file = podPidFile(c, pod);
  if (!existsSync(file)) return undefined;
  const proc = { name: pod, pid: Number(readFileSync(file, 'utf8')), bin: join(c.binDir, pod), log: join(c.runDir, 'logs', `${pod}.log`) };
  return isRunning(proc) ? proc : undefined;
}
