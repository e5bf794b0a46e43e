// The TCP load balancer in front of the servers' API servers, as an HA RKE2
// install has one (its address is a tls-san of the servers). Round robin; a
// backend that refuses the connection (its apiserver is restarting) is skipped.
import { connect, createServer, type Server, type Socket } from 'node:net';

export class LoadBalancer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private next = 0;
  port = 0;

  constructor(
    private readonly backends: readonly { host: string; port: number }[],
    private readonly listenHost: string,
  ) {}

  async open(port = 0): Promise<number> {
    const server = createServer((client) => this.forward(client, 0));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.listenHost, () => resolve());
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    return this.port;
  }

  private forward(client: Socket, attempt: number): void {
    if (attempt >= this.backends.length) return void client.destroy();
    const backend = this.backends[this.next++ % this.backends.length]!;
    const upstream = connect(backend.port, backend.host);
    client.pause();
    const track = (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    };
    track(client);
    let connected = false;
    upstream.once('error', () => {
      upstream.destroy();
      if (!connected) this.forward(client, attempt + 1);
      else client.destroy();
    });
    upstream.once('connect', () => {
      connected = true;
      track(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.resume();
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}
