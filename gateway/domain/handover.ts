// Offers a box can hand over by Bluetooth to members in its store whose phones have no network: each member's
// unredeemed, unexpired coupons, sealed with a key only that member's app can derive, listed under the EIDs
// the member's phone may be broadcasting now. The box learns nothing it can read.
import { sealOffer } from '../../beacon-agent/offer-seal.js';
import { isQuiet } from '../../consent/index.js';
import type { Sql } from '../db/database.js';
import { grantingAmong } from './consents.js';
import type { EidRegistry } from './eid-registry.js';

/** Newest coupons per member that a box holds for hand-over. */
const PER_MEMBER = 3;

export interface SealedOffer {
  eids: string[];
  sealed: string;
  expiresAt: string;
}

export async function sealedOffersForStore(db: Sql, registry: EidRegistry, storeId: string, now: Date): Promise<SealedOffer[]> {
  await registry.sync(db);
  // Only offers the member already received by SMS (so consent and quiet hours were checked when it went),
  // while marketing consent still holds: the hand-over is another way to pick up an offer, never a new one.
  const rows = await db.query<{ member_id: string; code: string; title: string; message: string; expires_at: Date; time_zone: string }>(
    `SELECT member_id, code, title, message, expires_at, time_zone FROM (
       SELECT c.member_id, c.code, coalesce(ao.title, o.title) AS title, coalesce(ao.message, o.message) AS message, c.expires_at, m.time_zone,
              row_number() OVER (PARTITION BY c.member_id ORDER BY c.issued_at DESC) AS n
         FROM coupons c JOIN offers o ON o.id = c.offer_id JOIN members m ON m.id = c.member_id
         LEFT JOIN alliance_offers ao ON ao.id = c.alliance_offer_id
         JOIN deliveries d ON d.coupon_id = c.id AND d.status = 'sent'
        WHERE c.member_id IN (SELECT member_id FROM member_zone_presence WHERE store_id = $1 AND cardinality(eids) > 0)
          AND c.expires_at > $2 AND NOT EXISTS (SELECT 1 FROM live_redemptions r WHERE r.coupon_id = c.id)) ranked
      WHERE n <= $3 ORDER BY member_id, expires_at`,
    [storeId, now, PER_MEMBER],
  );
  const marketing = await grantingAmong(db, [...new Set(rows.map((r) => r.member_id))], 'sms_marketing');
  return rows.flatMap((r) => {
    if (!marketing.has(r.member_id) || isQuiet(now, r.time_zone)) return [];
    const identity = registry.identity(r.member_id, now.getTime());
    if (!identity) return []; // consent withdrawn since: no key, nothing to seal for
    const message = r.message.replaceAll('{code}', r.code).replaceAll('{expires}', r.expires_at.toISOString().slice(0, 10));
    const sealed = sealOffer(identity.key, { couponCode: r.code, title: r.title, message, expiresAt: r.expires_at.toISOString() });
    return [{ eids: identity.eids, sealed: sealed.toString('base64'), expiresAt: r.expires_at.toISOString() }];
  });
}
