// A member's customer record: who they are, what they consented to, which offers they got and redeemed, and
// each offer's attribution chain: redemption -> coupon -> delivery -> decision -> visit -> campaign version.
import type { RfmStatus } from '../../campaign-rules/index.js';
import { qrPayload } from './coupons.js';
import type { Sql } from '../db/database.js';
import { toDecision, type Decision, type Outcome } from './decide.js';
import { consentStateView, currentConsent, type ConsentStateView } from './consents.js';
import { getMember, type Member } from './members.js';
import { memberRfm } from './rfm.js';

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
  /** The live redemption (a voided one does not count). */
  redemption: { id: string; storeId: string; tillRef: string | null; amount: number | null; redeemedAt: string } | null;
  /** The decision that issued the coupon. */
  decision: { id: string; occurredAt: string; trigger: string; outcome: Outcome; checkinId: string | null };
  /**
   * The visit the member was on when the decision was made (started at or before it, not ended before it),
   * preferring one at the campaign's store; null when the presence left no visit (e.g. a check-in alone).
   */
  visit: { id: string; storeId: string | null; geofenceId: string | null; sources: string[]; startedAt: string; endedAt: string | null } | null;
  /** The campaign version the decision used: its rules and offer are what the member got. */
  campaignVersion: { version: number; name: string };
}

/** The member's offers counted along the funnel. */
export interface OfferSummary {
  /** Coupons issued to the member. */
  received: number;
  /** Handed to the carrier or push service (sent, delivered or undelivered). */
  sent: number;
  delivered: number;
  redeemed: number;
  /** Sum of the amounts tills reported with those redemptions. */
  redeemedAmount: number;
}

export interface MemberRecord {
  member: Member;
  consents: ConsentStateView;
  /** RFM profile (campaign-rules/rfm.ts), only with profiling consent; otherwise the reason it is withheld. */
  rfm: RfmStatus;
  offerSummary: OfferSummary;
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
  amount: number | null;
  redeemed_at: Date | null;
  decision_id: string;
  decided_at: Date;
  trigger: string;
  decision_outcome: Outcome;
  checkin_id: string | null;
  campaign_version: number;
  version_name: string | null;
  visit_id: string | null;
  visit_store_id: string | null;
  visit_geofence_id: string | null;
  visit_sources: string[] | null;
  visit_started_at: Date | null;
  visit_ended_at: Date | null;
}

const SENT = new Set(['sent', 'delivered', 'undelivered']);

export async function memberRecord(db: Sql, memberId: string, now: Date = new Date()): Promise<MemberRecord> {
  const member = await getMember(db, memberId);
  const state = await currentConsent(db, memberId);
  const consents = consentStateView(state);
  const offers = await db.query<OfferRow>(
    `SELECT c.code, c.campaign_id, camp.name AS campaign_name, coalesce(ao.title, o.title) AS title, c.issued_at, c.expires_at,
            d.id AS delivery_id, d.channel, d.status AS delivery_status, d.status_reason,
            r.id AS redemption_id, r.store_id, r.till_ref, r.amount, r.redeemed_at,
            dec.id AS decision_id, dec.occurred_at AS decided_at, dec.trigger, dec.outcome AS decision_outcome, dec.checkin_id,
            dec.campaign_version, cv.name AS version_name,
            vis.id AS visit_id, vis.store_id AS visit_store_id, vis.geofence_id AS visit_geofence_id, vis.sources AS visit_sources,
            vis.started_at AS visit_started_at, vis.ended_at AS visit_ended_at
       FROM coupons c
       JOIN offers o ON o.id = c.offer_id
       -- A partner's coupon is titled by the partner's offer, as the member received it.
       LEFT JOIN alliance_offers ao ON ao.id = c.alliance_offer_id
       JOIN campaigns camp ON camp.id = c.campaign_id
       JOIN decisions dec ON dec.id = c.decision_id
       LEFT JOIN campaign_versions cv ON cv.campaign_id = dec.campaign_id AND cv.version = dec.campaign_version
       LEFT JOIN deliveries d ON d.coupon_id = c.id
       LEFT JOIN live_redemptions r ON r.coupon_id = c.id
       LEFT JOIN LATERAL (
         SELECT v.* FROM visits v
          WHERE v.member_id = c.member_id AND v.started_at <= dec.occurred_at AND (v.ended_at IS NULL OR v.ended_at >= dec.occurred_at)
          ORDER BY (v.store_id = (cv.definition->>'storeId')::uuid) IS TRUE DESC, v.started_at DESC
          LIMIT 1) vis ON true
      WHERE c.member_id = $1
      ORDER BY c.issued_at DESC`,
    [memberId],
  );
  const decisions = await db.query<Parameters<typeof toDecision>[0]>(
    'SELECT * FROM decisions WHERE member_id = $1 ORDER BY occurred_at DESC, created_at DESC LIMIT 20',
    [memberId],
  );
  const offerSummary: OfferSummary = { received: offers.length, sent: 0, delivered: 0, redeemed: 0, redeemedAmount: 0 };
  for (const o of offers) {
    if (o.delivery_status && SENT.has(o.delivery_status)) offerSummary.sent++;
    if (o.delivery_status === 'delivered') offerSummary.delivered++;
    if (o.redemption_id) {
      offerSummary.redeemed++;
      offerSummary.redeemedAmount += o.amount ?? 0;
    }
  }
  offerSummary.redeemedAmount = Math.round(offerSummary.redeemedAmount * 100) / 100;
  return {
    member,
    consents,
    rfm: await memberRfm(db, memberId, state, now),
    offerSummary,
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
        ? { id: o.redemption_id, storeId: o.store_id!, tillRef: o.till_ref, amount: o.amount, redeemedAt: o.redeemed_at!.toISOString() }
        : null,
      decision: {
        id: o.decision_id, occurredAt: o.decided_at.toISOString(), trigger: o.trigger, outcome: o.decision_outcome, checkinId: o.checkin_id,
      },
      visit: o.visit_id
        ? {
          id: o.visit_id, storeId: o.visit_store_id, geofenceId: o.visit_geofence_id, sources: o.visit_sources ?? [],
          startedAt: o.visit_started_at!.toISOString(), endedAt: o.visit_ended_at?.toISOString() ?? null,
        }
        : null,
      campaignVersion: { version: o.campaign_version, name: o.version_name ?? o.campaign_name },
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
