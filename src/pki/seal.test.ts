import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { newSealingKeyPair, openSealed, openWithSecret, sealTo, sealWithSecret } from './seal.js';

describe('sealTo / openSealed (X25519 + HKDF-SHA256 + AES-256-GCM)', () => {
  const msg = Buffer.from('-----BEGIN EC PRIVATE KEY-----\nnot really\n');

  it('opens for the recipient and context it was sealed for, and the box shows nothing of the plaintext', () => {
    const agent = newSealingKeyPair();
    const box = sealTo(agent.publicKey, msg, 'run-1 node a');
    expect(openSealed(box, agent, 'run-1 node a')).toEqual(msg);
    expect(Buffer.from(box.ciphertext, 'base64').includes(Buffer.from('PRIVATE'))).toBe(false);
    // A fresh sender key per box: two boxes of the same plaintext differ entirely.
    const again = sealTo(agent.publicKey, msg, 'run-1 node a');
    expect([again.senderKey === box.senderKey, again.ciphertext === box.ciphertext]).toEqual([false, false]);
  });

  it.each([
    ['another key', (b: ReturnType<typeof sealTo>) => b, () => newSealingKeyPair(), 'run-1 node a', /sealed to another key/],
    ['another node', (b: ReturnType<typeof sealTo>) => b, undefined, 'run-1 node b', /does not open for run-1 node b/],
    ['another run', (b: ReturnType<typeof sealTo>) => b, undefined, 'run-2 node a', /does not open/],
    ['a flipped ciphertext bit', (b: ReturnType<typeof sealTo>) => {
      const c = Buffer.from(b.ciphertext, 'base64');
      c[3] ^= 0x40;
      return { ...b, ciphertext: c.toString('base64') };
    }, undefined, 'run-1 node a', /does not open/],
    ['a substituted sender key', (b: ReturnType<typeof sealTo>) => ({ ...b, senderKey: newSealingKeyPair().publicKey }), undefined, 'run-1 node a', /does not open/],
    ['a truncated box', (b: ReturnType<typeof sealTo>) => ({ ...b, ciphertext: 'AAAA' }), undefined, 'run-1 node a', /truncated/],
    ['a sender key that is not one', (b: ReturnType<typeof sealTo>) => ({ ...b, senderKey: 'x' }), undefined, 'run-1 node a', /not an X25519 public key/],
  ])('refuses %s', (_what, change, otherKey, context, message) => {
    const agent = newSealingKeyPair();
    const box = change(sealTo(agent.publicKey, msg, 'run-1 node a'));
    const opener = otherKey ? otherKey() : agent;
    expect(() => openSealed(otherKey ? { ...box, recipientKey: opener.publicKey } : box, opener, context)).toThrow(otherKey ? /does not open/ : message);
    if (otherKey) expect(() => openSealed(box, opener, context)).toThrow(message);
  });

  it('refuses to seal to something that is not a key', () => {
    expect(() => sealTo('not-a-key', msg, 'c')).toThrow(/the recipient key is not an X25519 public key/);
  });
});

describe('sealWithSecret / openWithSecret', () => {
  it('opens with the same secret and context only', () => {
    const secret = randomBytes(64);
    const box = sealWithSecret(secret, Buffer.from('pairs'), 'rke-bundle run-1');
    expect(openWithSecret(secret, box, 'rke-bundle run-1').toString()).toBe('pairs');
    expect(() => openWithSecret(randomBytes(64), box, 'rke-bundle run-1')).toThrow(/does not open/);
    expect(() => openWithSecret(secret, box, 'rke-bundle run-2')).toThrow(/does not open/);
  });
});
