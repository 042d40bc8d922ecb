// A member's customer record: who they are, what they consented to, which offers they got and redeemed.
import { qrPayload } from './coupons.js';
import type { Sql } from '../db/database.js';
import { toDecision, type Decision } from './decide.js';
import { consentStateView, currentConsent, type ConsentStateView } from './consents.js';
import { getMember, type Member } from './members.js';

export interface OfferRecord {
  couponCode: string;
  /** What the app shows as a QR code or barcode for the till to scan. */
  qrPayload: string;
  campaignId: string;
  campaignName: string;
  title: string;
  issuedAt: string;
  expiresAt: string;
  delivery: { id: string; channel: string; status: string; statusReason: string | null } | null;
  redemption: { id: string; storeId: string; tillRef: string | null; redeemedAt: string } | null;
}

export interface MemberRecord {
  member: Member;
  consents: ConsentStateView;
  offers: OfferRecord[];
  recentDecisions: Decision[];
}

interface OfferRow {
  code: string;
  campaign_id: string;
  campaign_name: string;
  title: string;
  issued_at: Date;
  expires_at: Date;
  delivery_id: string | null;
  channel: string | null;
  delivery_status: string | null;
  status_reason: string | null;
  redemption_id: string | null;
  store_id: string | null;
  till_ref: string | null;
  redeemed_at: Date | null;
}

export async function memberRecord(db: Sql, memberId: string): Promise<MemberRecord> {
  const member = await getMember(db, memberId);
  const consents = consentStateView(await currentConsent(db, memberId));
  const offers = await db.query<OfferRow>(
    `SELECT c.code, c.campaign_id, camp.name AS campaign_name, o.title, c.issued_at, c.expires_at,
            d.id AS delivery_id, d.channel, d.status AS delivery_status, d.status_reason,
            r.id AS redemption_id, r.store_id, r.till_ref, r.redeemed_at
       FROM coupons c
       JOIN offers o ON o.id = c.offer_id
       JOIN campaigns camp ON camp.id = c.campaign_id
       LEFT JOIN deliveries d ON d.coupon_id = c.id
       LEFT JOIN live_redemptions r ON r.coupon_id = c.id
      WHERE c.member_id = $1
      ORDER BY c.issued_at DESC`,
    [memberId],
  );
  const decisions = await db.query<Parameters<typeof toDecision>[0]>(
    'SELECT * FROM decisions WHERE member_id = $1 ORDER BY occurred_at DESC, created_at DESC LIMIT 20',
    [memberId],
  );
  return {
    member,
    consents,
    offers: offers.map((o) => ({
      couponCode: o.code,
      qrPayload: qrPayload(o.code),
      campaignId: o.campaign_id,
      campaignName: o.campaign_name,
      title: o.title,
      issuedAt: o.issued_at.toISOString(),
      expiresAt: o.expires_at.toISOString(),
      delivery: o.delivery_id ? { id: o.delivery_id, channel: o.channel!, status: o.delivery_status!, statusReason: o.status_reason } : null,
      redemption: o.redemption_id
        ? { id: o.redemption_id, storeId: o.store_id!, tillRef: o.till_ref, redeemedAt: o.redeemed_at!.toISOString() }
        : null,
    })),
    recentDecisions: decisions.map(toDecision),
  };
}

/** "Why did this member get, or not get, an offer around then?": decisions in a window, newest first. */
export async function memberDecisions(db: Sql, memberId: string, q: { from: Date | null; to: Date | null; limit: number }): Promise<Decision[]> {
  await getMember(db, memberId);
  const rows = await db.query<Parameters<typeof toDecision>[0]>(
    `SELECT * FROM decisions WHERE member_id = $1 AND ($2::timestamptz IS NULL OR occurred_at >= $2)
        AND ($3::timestamptz IS NULL OR occurred_at <= $3)
      ORDER BY occurred_at DESC, created_at DESC LIMIT $4`,
    [memberId, q.from, q.to, q.limit],
  );
  return rows.map(toDecision);
}
