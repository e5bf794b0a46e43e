import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger, objectRef, reconcileLogger } from './logger.js';

function capture(): { lines: () => Record<string, unknown>[]; raw: () => string; stream: Writable } {
  let raw = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw += chunk.toString();
      cb();
    },
  });
  return { stream, raw: () => raw, lines: () => raw.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('logger', () => {
  it('writes JSON with name, level label and ISO time', () => {
    const out = capture();
    const log = createLogger({ name: 'certrotator-controller', destination: out.stream, base: { replica: 'r1' } });
    log.info({ nodes: 3 }, 'planned');
    const [line] = out.lines();
    expect(line).toMatchObject({ name: 'certrotator-controller', level: 'info', msg: 'planned', nodes: 3, replica: 'r1' });
    expect(String(line!.time)).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('redacts key material at the listed paths, up to two levels deep', () => {
    const out = capture();
    const log = createLogger({ name: 't', destination: out.stream });
    const pem = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIabc\n-----END EC PRIVATE KEY-----';
    log.info({ key: pem, cert: { privateKey: pem, subject: 'CN=kube-apiserver' }, auth: { user: { token: 'sekret-token' } }, headers: { authorization: 'Bearer abc' } }, 'x');
    expect(out.raw()).not.toContain('PRIVATE KEY');
    expect(out.raw()).not.toContain('sekret-token');
    expect(out.raw()).not.toContain('Bearer abc');
    const [line] = out.lines();
    expect(line).toMatchObject({ key: '[REDACTED]', cert: { privateKey: '[REDACTED]', subject: 'CN=kube-apiserver' } });
  });

  it('gives each reconcile a child logger with controller, object and a distinct reconcileID', () => {
    const out = capture();
    const log = createLogger({ name: 't', destination: out.stream });
    reconcileLogger(log, 'certificaterotation', 'rotate-all').info('step');
    reconcileLogger(log, 'certificaterotation', 'rotate-all').info('step');
    const [a, b] = out.lines();
    expect(a).toMatchObject({ controller: 'certificaterotation', object: 'rotate-all', msg: 'step' });
    expect(a!.reconcileID).not.toBe(b!.reconcileID);
  });

  it('makes the pino child at the first line of an enabled level, once: a pass that logs nothing pays for no child', () => {
    const out = capture();
    const log = createLogger({ name: 't', level: 'info', destination: out.stream });
    let children = 0;
    const child = log.child.bind(log);
    log.child = ((...args: Parameters<typeof log.child>) => (children++, child(...args))) as typeof log.child;
    const rlog = reconcileLogger(log, 'certificaterotation', 'rotate-all');
    rlog.debug({ ms: 1 }, 'reconciled');
    expect([children, out.raw()]).toEqual([0, '']);
    rlog.info({ nodes: 3 }, 'one');
    rlog.warn({ nodes: 3 }, 'two');
    expect(children).toBe(1);
    expect(out.lines()).toEqual([
      expect.objectContaining({ level: 'info', controller: 'certificaterotation', object: 'rotate-all', nodes: 3, msg: 'one' }),
      expect.objectContaining({ level: 'warn', msg: 'two' }),
    ]);
  });

  it('objectRef keeps identity only, never spec, status or data', () => {
    const ref = objectRef({
      kind: 'NodeRotation',
      metadata: { name: 'n1', resourceVersion: '42', generation: 3 },
      ...({ spec: { secret: 'x' }, data: { 'tls.key': 'y' } } as object),
    });
    expect(ref).toEqual({ kind: 'NodeRotation', name: 'n1', namespace: undefined, resourceVersion: '42', generation: 3 });
  });

  it('serializes errors with message and stack', () => {
    const out = capture();
    const log = createLogger({ name: 't', destination: out.stream });
    log.error({ err: new Error('renew failed') }, 'failed');
    const [line] = out.lines() as { err: { message: string; stack: string; type: string } }[];
    expect(line!.err).toMatchObject({ type: 'Error', message: 'renew failed' });
    expect(line!.err.stack).toContain('renew failed');
  });
});
