// Alliance offers.
//
// Glossary
// - partner: a merchant (kind 'partner') that publishes offers for brands to hand out; it has stores and tills.
// - alliance offer: a partner's offer: a title, a message (with {code}, like a campaign offer), a face value, a
//   validity window, issue and redemption budgets, and the partner's stores where its coupons are redeemed.
//   Published when made; withdrawn by its partner (no new coupons; issued ones stay redeemable until they expire).
// - alliance campaign: a brand's campaign whose coupon is a partner's offer (campaign definition `alliance`).
// - alliance coupon: a coupon such a campaign issued; `coupons.alliance_offer_id` names the offer. Its owner,
//   for redemption, is the partner.
import { nearestOffers, type AllianceChoice, type LatLon, type NearOffer, type PresenceEvent } from '../../campaign-rules/index.js';
import type { Sql } from '../db/database.js';
import { AppError, invalid } from '../errors.js';

export type OfferStatus = 'published' | 'withdrawn';

export interface AllianceOffer {
  id: string;
  merchantId: string;
  title: string;
  message: string;
  /** Money in the programme's currency (e.g. 5.5); kept as whole cents. */
  faceValue: number;
  budget: { maxIssued: number | null; maxRedemptions: number | null };
  validFrom: string;
  validTo: string;
  validDays: number;
  storeIds: string[];
  status: OfferStatus;
  withdrawnAt: string | null;
  createdAt: string;
}

export interface OfferInput {
  title: string;
  message: string;
  faceValue: number;
  budget?: { maxIssued?: number; maxRedemptions?: number };
  validFrom: string;
  validTo: string;
  validDays?: number;
  storeIds?: string[];
}

interface OfferRow {
  id: string;
  merchant_id: string;
  title: string;
  message: string;
  face_value_cents: number;
  max_issued: number | null;
  max_redemptions: number | null;
  valid_from: Date;
  valid_to: Date;
  valid_days: number;
  status: OfferStatus;
  withdrawn_at: Date | null;
  created_at: Date;
  store_ids: string[];
}

const view = (r: OfferRow): AllianceOffer => ({
  id: r.id,
  merchantId: r.merchant_id,
  title: r.title,
  message: r.message,
  faceValue: Number(r.face_value_cents) / 100,
  budget: { maxIssued: r.max_issued, maxRedemptions: r.max_redemptions },
  validFrom: r.valid_from.toISOString(),
  validTo: r.valid_to.toISOString(),
  validDays: r.valid_days,
  storeIds: r.store_ids,
  status: r.status,
  withdrawnAt: r.withdrawn_at?.toISOString() ?? null,
  createdAt: r.created_at.toISOString(),
});

const SELECT = `SELECT o.*, ARRAY(SELECT s.store_id FROM alliance_offer_stores s WHERE s.offer_id = o.id ORDER BY s.store_id)::text[] AS store_ids
  FROM alliance_offers o`;

/** Money to whole cents; more precision than a cent is refused rather than rounded away. */
export function toCents(amount: number, field: string): number {
  const cents = Math.round(amount * 100);
  if (Math.abs(cents - amount * 100) > 1e-6) throw invalid({ field, problem: 'has more precision than a cent' });
  return cents;
}

/** Publishes a partner's offer. Its stores must be the partner's own; none named means all of them. */
export async function createOffer(db: Sql, merchantId: string, input: OfferInput, defaultValidDays: number, now: Date): Promise<AllianceOffer> {
  const [merchant] = await db.query<{ kind: string }>('SELECT kind FROM merchants WHERE id = $1', [merchantId]);
  if (!merchant) throw new AppError('MERCHANT_NOT_FOUND', `merchant ${merchantId} does not exist`);
  if (merchant.kind !== 'partner') {
    throw new AppError('MERCHANT_NOT_PARTNER', `merchant ${merchantId} is a ${merchant.kind}; only partners publish alliance offers`);
  }
  const cents = toCents(input.faceValue, 'body/faceValue');
  const validFrom = new Date(input.validFrom);
  const validTo = new Date(input.validTo);
  if (validTo <= validFrom) throw invalid({ field: 'body/validTo', problem: 'must be after validFrom' });
  if (validTo <= now) throw invalid({ field: 'body/validTo', problem: 'is in the past' });
  const own = (await db.query<{ id: string }>('SELECT id FROM stores WHERE merchant_id = $1 ORDER BY created_at, id', [merchantId])).map((r) => r.id);
  let storeIds = own;
  if (input.storeIds) {
    const mine = new Set(own);
    const problems = input.storeIds.flatMap((id, i) =>
      mine.has(id) ? [] : [{ field: `body/storeIds/${i}`, problem: `store ${id} is not one of the partner's stores` }]);
    if (problems.length > 0) throw invalid(...problems);
    storeIds = [...new Set(input.storeIds)];
  }
  if (storeIds.length === 0) throw new AppError('PARTNER_HAS_NO_STORES', `partner ${merchantId} has no store to redeem the offer at; add one first`);
  const [row] = await db.query<{ id: string }>(
    `WITH o AS (
       INSERT INTO alliance_offers (merchant_id, title, message, face_value_cents, max_issued, max_redemptions, valid_from, valid_to, valid_days)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id),
     s AS (INSERT INTO alliance_offer_stores (offer_id, store_id) SELECT o.id, unnest($10::uuid[]) FROM o)
     SELECT id FROM o`,
    [merchantId, input.title, input.message, cents, input.budget?.maxIssued ?? null, input.budget?.maxRedemptions ?? null,
      validFrom, validTo, input.validDays ?? defaultValidDays, storeIds],
  );
  return getOffer(db, row!.id);
}

export async function getOffer(db: Sql, id: string): Promise<AllianceOffer> {
  const [row] = await db.query<OfferRow>(`${SELECT} WHERE o.id = $1`, [id]);
  if (!row) throw new AppError('ALLIANCE_OFFER_NOT_FOUND', `alliance offer ${id} does not exist`);
  return view(row);
}

/**
 * The offers a caller may list: every one (an administrator), a partner's own (whatever their state), or, for a
 * brand's marketer choosing what to include in campaigns, the published ones valid now.
 */
export async function listOffers(db: Sql, filter: { merchantId: string | null } | { availableAt: Date }): Promise<AllianceOffer[]> {
  const rows = 'availableAt' in filter
    ? await db.query<OfferRow>(`${SELECT} WHERE o.status = 'published' AND o.valid_from <= $1 AND o.valid_to > $1 ORDER BY o.created_at, o.id LIMIT 1000`, [filter.availableAt])
    : await db.query<OfferRow>(`${SELECT} WHERE ($1::uuid IS NULL OR o.merchant_id = $1) ORDER BY o.created_at, o.id LIMIT 1000`, [filter.merchantId]);
  return rows.map(view);
}

/** No new coupons from now on; coupons already issued stay redeemable until they expire. */
export async function withdrawOffer(db: Sql, id: string, now: Date): Promise<AllianceOffer> {
  // The row lock this update takes is the one issuing takes: a decision that reserved a coupon before commits
  // first, any later one sees the offer withdrawn.
  const [row] = await db.query<{ changed: boolean }>(
    `WITH cur AS (SELECT id FROM alliance_offers WHERE id = $1),
     upd AS (UPDATE alliance_offers SET status = 'withdrawn', withdrawn_at = $2 WHERE id = $1 AND status = 'published' RETURNING id)
     SELECT EXISTS (SELECT 1 FROM upd) AS changed FROM cur`,
    [id, now],
  );
  if (!row) throw new AppError('ALLIANCE_OFFER_NOT_FOUND', `alliance offer ${id} does not exist`);
  if (!row.changed) throw new AppError('ALLIANCE_OFFER_WITHDRAWN', `alliance offer ${id} was already withdrawn`);
  return getOffer(db, id);
}

/** Offers a campaign may hand out at an event, nearest first, with where they were measured from. */
export interface Candidates {
  origin: LatLon | null;
  /** What the origin is, for the decision's trace. */
  from: 'campaign_store' | 'member_position' | 'event_store' | 'unknown';
  offers: NearOffer[];
}

/**
 * The campaign's offers that are published, valid at `now`, with issue budget left and a redeemable store within
 * reach of the origin, nearest first. A read: the budget is taken by `reserveOffer`, which checks again.
 */
export async function allianceCandidates(db: Sql, choice: AllianceChoice, event: PresenceEvent, now: Date): Promise<Candidates> {
  // The member's position: the GPS fix, or for a beacon event the store it happened in.
  const byMember = choice.near === 'member';
  const position = byMember ? event.position ?? null : null;
  const originStore = byMember ? (position ? null : event.storeId ?? null) : choice.storeId;
  const rows = await db.query<{ offer_id: string | null; store_id: string | null; lat: number | null; lon: number | null; origin: LatLon | null }>(
    `SELECT o.id AS offer_id, s.id AS store_id, s.lat, s.lon,
            (SELECT json_build_object('lat', lat, 'lon', lon) FROM stores WHERE id = $3::uuid) AS origin
       FROM (SELECT 1) one
       LEFT JOIN alliance_offers o ON o.id = ANY($1::uuid[]) AND o.status = 'published' AND o.valid_from <= $2 AND o.valid_to > $2
                                  AND (o.max_issued IS NULL OR o.issued < o.max_issued)
       LEFT JOIN alliance_offer_stores os ON os.offer_id = o.id
       LEFT JOIN stores s ON s.id = os.store_id`,
    [choice.offerIds, now, originStore],
  );
  const origin = position ?? rows[0]?.origin ?? null;
  const from = position ? 'member_position' : origin === null ? 'unknown' : byMember ? 'event_store' : 'campaign_store';
  if (!origin) return { origin: null, from, offers: [] };
  const stores = rows.flatMap((r) => (r.offer_id && r.store_id ? [{ offerId: r.offer_id, storeId: r.store_id, location: { lat: r.lat!, lon: r.lon! } }] : []));
  return { origin, from, offers: nearestOffers(origin, stores, choice.withinM, choice.offerIds) };
}

export interface Reserved {
  id: string;
  merchantId: string;
  title: string;
  message: string;
  validDays: number;
  validTo: Date;
}

/**
 * Takes one coupon of the offer's issue budget, by an atomic conditional update: concurrent decisions queue on the
 * offer's row and each sees the count the one before it left. Null when the offer is no longer available.
 */
export async function reserveOffer(tx: Sql, offerId: string, now: Date): Promise<Reserved | null> {
  const [row] = await tx.query<{ id: string; merchant_id: string; title: string; message: string; valid_days: number; valid_to: Date }>(
    `UPDATE alliance_offers SET issued = issued + 1
      WHERE id = $1 AND status = 'published' AND valid_from <= $2 AND valid_to > $2 AND (max_issued IS NULL OR issued < max_issued)
      RETURNING id, merchant_id, title, message, valid_days, valid_to`,
    [offerId, now],
  );
  return row ? { id: row.id, merchantId: row.merchant_id, title: row.title, message: row.message, validDays: row.valid_days, validTo: row.valid_to } : null;
}
