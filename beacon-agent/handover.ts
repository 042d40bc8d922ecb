// What the box holds for hand-over: sealed offers from the gateway, under the EIDs their member's phone may be
// broadcasting. A phone that wrote its EID on a connection reads back the offers for that EID. The box cannot
// open them and forgets them when they expire or the next poll no longer lists them.
import { encodeOffers } from './gatt.js';

export interface SealedOffer {
  eids: string[];
  sealed: string;
  expiresAt: string;
}

export class HandoverStore {
  private byEid = new Map<string, Array<{ sealed: Buffer; expiresAt: number }>>();

  /** Replaces everything with the gateway's latest list. */
  replace(offers: readonly SealedOffer[]): void {
    const next = new Map<string, Array<{ sealed: Buffer; expiresAt: number }>>();
    for (const o of offers) {
      const item = { sealed: Buffer.from(o.sealed, 'base64'), expiresAt: Date.parse(o.expiresAt) };
      for (const eid of o.eids) next.set(eid, [...(next.get(eid) ?? []), item]);
    }
    this.byEid = next;
  }

  /** The read answer for a phone that wrote this EID: its unexpired sealed offers (maybe none). */
  answer(eid: string | undefined, nowMs: number): Buffer {
    const items = (eid ? this.byEid.get(eid) : undefined) ?? [];
    return encodeOffers(items.filter((i) => i.expiresAt > nowMs).map((i) => i.sealed));
  }

  get size(): number {
    return this.byEid.size;
  }
}
