// What the per-node stand-ins (systemctl, the rke2 unit) need to know about
// their node; written by the harness into <nodeDir>/unit.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
