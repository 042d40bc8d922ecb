// Which partner offer a brand's campaign hands out: of the offers still available, the one with a redeemable
// store nearest to the origin (the campaign's store, or the member), within the campaign's distance.
import { distanceM } from './geometry.js';
import type { LatLon } from './model.js';

/** One redeemable store of an available offer. */
export interface OfferStore {
  offerId: string;
  storeId: string;
  location: LatLon;
}

export interface NearOffer {
  offerId: string;
  /** The offer's redeemable store nearest to the origin. */
  storeId: string;
  distanceM: number;
}

/**
 * Each offer once, at its nearest store, if that is within `withinM` (inclusive); nearest first. Ties go to the
 * offer listed first in `preference` (the campaign's order), then to the smaller store id, so the choice is
 * the same on every run.
 */
export function nearestOffers(origin: LatLon, stores: readonly OfferStore[], withinM: number, preference: readonly string[] = []): NearOffer[] {
  const best = new Map<string, NearOffer>();
  for (const s of stores) {
    const d = distanceM(origin, s.location);
    if (d > withinM) continue;
    const cur = best.get(s.offerId);
    if (!cur || d < cur.distanceM || (d === cur.distanceM && s.storeId < cur.storeId)) {
      best.set(s.offerId, { offerId: s.offerId, storeId: s.storeId, distanceM: d });
    }
  }
  const rank = (id: string) => {
    const i = preference.indexOf(id);
    return i < 0 ? preference.length : i;
  };
  return [...best.values()].sort((a, b) => a.distanceM - b.distanceM || rank(a.offerId) - rank(b.offerId) || (a.offerId < b.offerId ? -1 : 1));
}
