// The agent's sealing keys, one per run it is working on, in this process's
// memory only. The controller seals a node's RKE certificates to the public
// half (published in the NodeRotation's status); the private half is never
// written, so a restarted agent makes a new one and is sealed to again, and a
// key is dropped when its run is reported finished.
import { newSealingKeyPair, type SealingKeyPair } from '../pki/seal.js';

export class SealingKeys {
  private readonly byRun = new Map<string, SealingKeyPair>();

  forRun(runID: string): SealingKeyPair {
    let k = this.byRun.get(runID);
    if (!k) this.byRun.set(runID, (k = newSealingKeyPair()));
    return k;
  }

  forget(runID: string): void {
    this.byRun.delete(runID);
  }

  get size(): number {
    return this.byRun.size;
  }
}
