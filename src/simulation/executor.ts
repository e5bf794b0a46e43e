// The restart executor for simulated nodes: asks the node's simulated components
// (src/simulation/node.ts) over a loopback HTTP control port to stop, start or
// restart, exactly where the host executor would call systemctl or docker.
import { request } from 'node:http';
import { RestartError, type RestartExecutor } from '../host/restart.js';

export class SimulationExecutor implements RestartExecutor {
  constructor(private readonly controlUrl: string) {}

  private async call(action: string, body: unknown): Promise<unknown> {
    const url = new URL(`/${action}`, this.controlUrl);
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 60_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          if (res.statusCode === 200) resolve(text ? JSON.parse(text) : undefined);
          else reject(new RestartError(`simulated ${action} failed: ${text || res.statusCode}`));
        });
      });
      req.on('timeout', () => req.destroy(new RestartError(`simulated ${action} timed out`)));
      req.on('error', (e) => reject(e instanceof RestartError ? e : new RestartError(`simulated ${action}: ${e.message}`)));
      req.end(JSON.stringify(body));
    });
  }

  async stopUnit(unit: string): Promise<void> {
    await this.call('stop', { unit });
  }

  async startUnit(unit: string): Promise<void> {
    await this.call('start', { unit });
  }

  async restartUnit(unit: string): Promise<void> {
    await this.call('restart', { unit });
  }

  async restartContainers(containers: readonly string[]): Promise<string[]> {
    return (await this.call('restart-containers', { containers })) as string[];
  }
}
