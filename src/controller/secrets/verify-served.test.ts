// Real TLS servers on loopback, certificates made by openssl (test/secrets/webhook-pki.ts).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { issueServing, makeCa, type Pem } from '../../../test/secrets/webhook-pki.js';
import { verifyServed } from './verify-served.js';

const SVC = { namespace: 'hooks', name: 'hook' };
const DNS = 'hook.hooks.svc';
const ca = makeCa({ cn: 'hook-ca' });
const sameNameCa = makeCa({ cn: 'hook-ca' });
const renewed = issueServing(ca, { cn: DNS, dns: [DNS] });
const old = issueServing(ca, { cn: DNS, dns: [DNS] });
const wrongName = issueServing(ca, { cn: 'other.hooks.svc', dns: ['other.hooks.svc'] });
const serial = (p: Pem): string => new X509Certificate(p.certPem).serialNumber;

const servers: Server[] = [];
async function serve(pair: Pem, byName?: Record<string, Pem>): Promise<number> {
  const server = createServer({
    cert: pair.certPem,
    key: pair.keyPem,
    // A server that picks its certificate by the name asked for (dynamiclistener does).
    ...(byName ? { SNICallback: (name: string, cb: (e: Error | null, ctx?: ReturnType<typeof createSecureContext>) => void) => cb(null, createSecureContext({ cert: (byName[name] ?? pair).certPem, key: (byName[name] ?? pair).keyPem })) } : {}),
  }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

let ports: Record<string, number>;
beforeAll(async () => {
  ports = {
    renewed: await serve(renewed),
    old: await serve(old),
    wrongName: await serve(wrongName),
    sni: await serve(wrongName, { [DNS]: renewed }),
  };
});
afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
});

describe('verifyServed', () => {
  const front = (bundle: Pem) => ({ name: 'ValidatingWebhookConfiguration/hook', caBundle: bundle.certPem });
  const cases: [string, () => [number[], Pem], RegExp | 'ok'][] = [
    ['the renewed certificate, trusted by the caBundle, for the Service name', () => [[ports.renewed!], ca], 'ok'],
    ['the old certificate still served', () => [[ports.old!], ca], /serves serial \w+, not the renewed \w+ \(its pod has not loaded the new Secret\)/],
    ['a caBundle of another CA with the same name', () => [[ports.renewed!], sameNameCa], /serves serial \w+, which does not verify against the caBundle of ValidatingWebhookConfiguration\/hook/],
    ['a certificate for another name', () => [[ports.wrongName!], ca], /which is not valid for hook\.hooks\.svc: no subjectAltName matches \(DNS:other\.hooks\.svc\)/],
    ['a server that picks its certificate by the name asked for: the Service name is sent', () => [[ports.sni!], ca], 'ok'],
  ];
  test.each(cases)('%s', async (_name, make, want) => {
    const [endpointPorts, bundle] = make();
    const verdicts = await verifyServed(endpointPorts.map((port) => ({ address: '127.0.0.1', port })), SVC, front(bundle), serial(renewed));
    expect(verdicts).toHaveLength(1);
    if (want === 'ok') expect(verdicts[0]).toEqual({ endpoint: `127.0.0.1:${endpointPorts[0]}`, ok: true });
    else expect(verdicts[0]).toEqual({ endpoint: `127.0.0.1:${endpointPorts[0]}`, ok: false, reason: expect.stringMatching(want) });
  });

  test('every endpoint is judged: one pod still on the old certificate fails the Service; one that does not answer says so', async () => {
    const closed = await serve(renewed);
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const verdicts = await verifyServed(
      [ports.renewed!, ports.old!, closed].map((port) => ({ address: '127.0.0.1', port })),
      SVC,
      front(ca),
      serial(renewed),
      1000,
    );
    expect(verdicts.map((v) => v.ok)).toEqual([true, false, false]);
    expect(verdicts[2]).toMatchObject({ reason: expect.stringMatching(/ECONNREFUSED/) });
  });
});
