// Verification of a Secret-backed renewal (issue 13 §6, the first half): every
// endpoint behind the Service serves the renewed serial, and the certificate is
// one the API server accepts when it calls the Service: the chain verifies
// against the front's caBundle and a SAN names `<service>.<namespace>.svc`, the
// name the API server dials (and sends as the TLS server name). It is the
// served-certificate check the agents make on nodes (src/host/verify.ts),
// pointed at a Service's endpoints. The second half, a request that the API
// server really sends through the webhook (a server-side dry run), is the run's.
// Run by target-steps.ts (scope: Secrets, mode: Apply).
import { ServedCertificateError, servedSerial } from '../../host/verify.js';
import type { ServiceRef } from './discovery.js';
import { serviceDnsName } from './known-layouts.js';
import { normalSerial } from '../../pki/certfile.js';

export interface Endpoint {
  address: string;
  port: number;
}

export type EndpointVerdict = { endpoint: string; ok: true } | { endpoint: string; ok: false; reason: string };


/** One verdict per endpoint; the renewal is served only when every one is ok. */
export async function verifyServed(endpoints: readonly Endpoint[], service: ServiceRef, front: { name: string; caBundle: string }, wantSerial: string, timeoutMs = 3000): Promise<EndpointVerdict[]> {
  const trust = { caFile: `the caBundle of ${front.name}`, ca: Buffer.from(front.caBundle, 'utf8'), identity: serviceDnsName(service) };
  return Promise.all(
    endpoints.map(async ({ address, port }): Promise<EndpointVerdict> => {
      const endpoint = `${address}:${port}`;
      try {
        const serial = await servedSerial(address, port, timeoutMs, trust);
        if (normalSerial(serial) !== normalSerial(wantSerial)) return { endpoint, ok: false, reason: `${endpoint} serves serial ${serial}, not the renewed ${wantSerial} (its pod has not loaded the new Secret)` };
        return { endpoint, ok: true };
      } catch (e) {
        // A served certificate the API server would refuse, or no answer at all: both are "not served".
        return { endpoint, ok: false, reason: e instanceof ServedCertificateError ? e.message : (e as Error).message };
      }
    }),
  );
}
