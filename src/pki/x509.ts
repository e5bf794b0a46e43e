// @peculiar/x509 needs a Reflect polyfill before it loads (tsyringe) and a
// WebCrypto provider; Node's global one is native and runs keygen off the event loop.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
