// A real HTTPS admission webhook for the tests: it serves the pair it is
// given (as a webhook's pod serves the Secret it mounts) and allows every
// AdmissionReview, counting them; a ConversionReview is answered by renaming
// each object's apiVersion, and a GET (through an APIService) gets an empty
// APIResourceList, so it also stands in for a conversion webhook and an
// aggregated API server. The real kube-apiserver calls it through a
// Service whose EndpointSlice points at its address, and verifies it with the
// webhook configuration's caBundle: whether that call succeeds is the API
// server's judgement, not certrotator's.
//
// The address is on the host's loopback interface but outside 127.0.0.0/8
// (EndpointSlice validation refuses loopback addresses): one /32 of TEST-NET-1
// (192.0.2.0/24, RFC 5737) per run, added to `lo` and removed again, so the
// traffic never leaves the machine.
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { runNet } from '../../src/simulation/loopback.js';

export interface Pair {
  certPem: string;
  keyPem: string;
}

/** This run's webhook address (192.0.2.<B>, B as in this run's 127.<B> network). */
export function webhookAddress(): string {
  return `192.0.2.${runNet().split('.')[1]}`;
}

/** Adds the run's webhook address to `lo` (root); returns a function that removes it. */
export function claimWebhookAddress(): { address: string; release: () => void } {
  const address = webhookAddress();
  const present = execFileSync('ip', ['-o', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' }).includes(` ${address}/32`);
  if (!present) execFileSync('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo']);
  return {
    address,
    release: () => {
      if (!present) execFileSync('ip', ['addr', 'del', `${address}/32`, 'dev', 'lo']);
    },
  };
}

export class WebhookServer {
  calls = 0;
  /** The pair being served (what the "pod" loaded). */
  serving: Pair | undefined;
  private server: Server | undefined;

  constructor(private readonly address: string) {}

  /** Starts (or restarts, as a pod replaced would) serving `pair`; returns the port. */
  async serve(pair: Pair, port = 0): Promise<number> {
    await this.stop();
    const server = createServer({ cert: pair.certPem, key: pair.keyPem }, (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        this.calls++;
        res.setHeader('Content-Type', 'application/json');
        // A discovery GET (the aggregator's availability check, or a client through an APIService): an empty resource list.
        if (req.method === 'GET') {
          res.end(JSON.stringify({ kind: 'APIResourceList', apiVersion: 'v1', groupVersion: (req.url ?? '').replace(/^\/apis\//, '').replace(/\?.*$/, ''), resources: [] }));
          return;
        }
        let review: { apiVersion?: string; kind?: string; request?: { uid?: string; desiredAPIVersion?: string; objects?: object[] } } = {};
        try {
          review = JSON.parse(body) as typeof review;
        } catch {
          /* not a review: answered as an admission webhook all the same */
        }
        const uid = review.request?.uid ?? '';
        // A CRD conversion webhook: every object converted by renaming its apiVersion (the versions share a schema).
        if (review.kind === 'ConversionReview') {
          const convertedObjects = (review.request?.objects ?? []).map((o) => ({ ...o, apiVersion: review.request?.desiredAPIVersion }));
          res.end(JSON.stringify({ apiVersion: review.apiVersion, kind: 'ConversionReview', response: { uid, convertedObjects, result: { status: 'Success' } } }));
          return;
        }
        res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } }));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.address, () => resolve());
    });
    this.server = server;
    this.serving = pair;
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
