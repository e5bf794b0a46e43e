// What the `docker` stand-in knows about its node: the containers and where
// their processes' PIDs and logs are kept (<nodeDir>/docker.json).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRunning, type RecordedProcess } from '../cluster/processes.js';
import type { Container } from './rke-layout.js';

export interface DockerConfig {
  readonly binDir: string;
  readonly runDir: string;
  readonly containers: readonly Container[];
}

export const dockerConfigPath = (nodeDir: string): string => join(nodeDir, 'docker.json');

export function readDockerConfig(nodeDir: string): DockerConfig {
  return JSON.parse(readFileSync(dockerConfigPath(nodeDir), 'utf8')) as DockerConfig;
}

// Images without a real binary here: run as rke-host-components.ts.
export const STAND_IN_IMAGES: readonly string[] = ['kubelet', 'kube-proxy', 'nginx-proxy'];

// Present while a container is stopped on purpose (docker stop): the restart
// policy does not bring it back.
export const stoppedMarker = (c: DockerConfig, name: string): string => join(c.runDir, 'pods', `${name}.stopped`);

export const containerPidFile = (c: DockerConfig, name: string): string => join(c.runDir, 'pods', `${name}.pid`);

// The container's process, if its recorded PID still runs what it was started as.
export function runningContainer(c: DockerConfig, name: string): RecordedProcess | undefined {
  const file = containerPidFile(c, name);
  const spec = c.containers.find((x) => x.name === name);
  if (!spec || !existsSync(file)) return undefined;
  const standIn = STAND_IN_IMAGES.includes(spec.image);
  const proc = { name, pid: Number(readFileSync(file, 'utf8')), bin: standIn ? process.execPath : join(c.binDir, spec.image), log: join(c.runDir, 'logs', `${name}.log`) };
  return isRunning(proc) ? proc : undefined;
}
