// A loopback TCP proxy in front of the API server, so a test can break a
// client's connections the way a network blip or an apiserver restart does
// (TLS passes through untouched; the serving cert has IP:127.0.0.1).
import type { KubeAccess } from '../../../src/kube/kubeconfig.js';
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {}

  /** Starts listening (on a fixed port after the first call, so clients can come back). */
  async open(): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const addr = server.address();
    if (addr && typeof addr === 'object') this.port = addr.port;
    return this.port;
  }

  /** Resets every open connection and refuses new ones until `open()`. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  activeConnections(): number {
    return this.sockets.size / 2;
  }
}

/** `base` (same users and contexts) pointed at a TcpProxy listening on `port`. */
export function kubeConfigVia(base: KubeAccess, port: number): KubeAccess {
  return base.withServer(`https://127.0.0.1:${port}`);
}
