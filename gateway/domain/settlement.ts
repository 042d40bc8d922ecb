// Settlement of alliance offers between the partners that honour them and the brands that hand them out, from
// stored rows alone (alliance coupons, their deliveries, live redemptions).
//
// Definitions
// - A line is one alliance offer x issuing brand (the merchant of the campaign that issued the coupon) x
//   redeeming store. A coupon belongs to no store until it is redeemed, so issue figures are on the line whose
//   storeId is null, and redemption figures on the line of the store that redeemed.
// - issued: alliance coupons issued in the period (by issue time).
// - sent: of those, ones whose delivery was handed to the carrier or push service (sent, delivered, undelivered);
//   delivered: ones confirmed delivered.
// - redeemed: live redemptions (voided ones excluded) made in the period (by redemption time), whenever the
//   coupon was issued; faceValueRedeemed = redeemed x the offer's face value.
// - The period is [from, to): from inclusive, to exclusive; either may be left open.
// - totals are the sums of the lines.
import type { Sql } from '../db/database.js';
import { AppError } from '../errors.js';

export interface SettlementLine {
  allianceOfferId: string;
  offerTitle: string;
  partnerId: string;
  brandId: string;
  brandName: string;
  /** The redeeming store; null on the line of issue figures. */
  storeId: string | null;
  storeName: string | null;
  /** The offer's face value, programme currency. */
  faceValue: number;
  issued: number;
  sent: number;
  delivered: number;
  redeemed: number;
  faceValueRedeemed: number;
}

export type Totals = Pick<SettlementLine, 'issued' | 'sent' | 'delivered' | 'redeemed' | 'faceValueRedeemed'>;

export interface Settlement {
  period: { from: string | null; to: string | null };
  /** Whose settlement it is and what it was narrowed to. */
  scope: { allianceOfferId?: string; partnerId?: string; brandId?: string };
  lines: SettlementLine[];
  totals: Totals;
}

export interface Period {
  from?: string;
  to?: string;
}

/** What a settlement covers: an offer, a partner's offers, a brand's coupons, or a combination. */
export interface SettlementScope {
  allianceOfferId?: string;
  partnerId?: string;
  brandId?: string;
}

interface LineRow {
  offer_id: string;
  title: string;
  partner_id: string;
  face_value_cents: number;
  brand_id: string;
  brand_name: string;
  store_id: string | null;
  store_name: string | null;
  issued: number;
  sent: number;
  delivered: number;
  redeemed: number;
}

// $1 offer, $2 partner, $3 brand (each null for any), $4 from, $5 to (null for open).
const LINES = `
WITH scoped AS (
  SELECT c.id, c.alliance_offer_id AS offer_id, camp.merchant_id AS brand_id, c.issued_at
    FROM coupons c
    JOIN campaigns camp ON camp.id = c.campaign_id
    JOIN alliance_offers o ON o.id = c.alliance_offer_id
   WHERE c.alliance_offer_id IS NOT NULL
     AND ($1::uuid IS NULL OR c.alliance_offer_id = $1) AND ($2::uuid IS NULL OR o.merchant_id = $2) AND ($3::uuid IS NULL OR camp.merchant_id = $3)),
issue AS (
  SELECT s.offer_id, s.brand_id, NULL::uuid AS store_id, count(*)::int AS issued,
         count(*) FILTER (WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.coupon_id = s.id AND d.status IN ('sent', 'delivered', 'undelivered')))::int AS sent,
         count(*) FILTER (WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.coupon_id = s.id AND d.status = 'delivered'))::int AS delivered,
         0 AS redeemed
    FROM scoped s
   WHERE ($4::timestamptz IS NULL OR s.issued_at >= $4) AND ($5::timestamptz IS NULL OR s.issued_at < $5)
   GROUP BY s.offer_id, s.brand_id),
redemption AS (
  SELECT s.offer_id, s.brand_id, r.store_id, 0 AS issued, 0 AS sent, 0 AS delivered, count(*)::int AS redeemed
    FROM scoped s JOIN live_redemptions r ON r.coupon_id = s.id
   WHERE ($4::timestamptz IS NULL OR r.redeemed_at >= $4) AND ($5::timestamptz IS NULL OR r.redeemed_at < $5)
   GROUP BY s.offer_id, s.brand_id, r.store_id)
SELECT l.offer_id, o.title, o.merchant_id AS partner_id, o.face_value_cents, l.brand_id, b.name AS brand_name, l.store_id, st.name AS store_name,
       l.issued, l.sent, l.delivered, l.redeemed
  FROM (SELECT * FROM issue UNION ALL SELECT * FROM redemption) l
  JOIN alliance_offers o ON o.id = l.offer_id
  JOIN merchants b ON b.id = l.brand_id
  LEFT JOIN stores st ON st.id = l.store_id
 ORDER BY o.created_at, o.id, b.name, b.id, l.store_id IS NOT NULL, st.name, l.store_id`;

function instant(value: string | undefined, field: string): Date | null {
  if (value === undefined) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new AppError('REPORT_RANGE_INVALID', `${field} is not an instant`);
  return d;
}

/** The settlement's lines and totals; money is summed in whole cents, so totals equal the sum of the lines exactly. */
export async function settlement(db: Sql, scope: SettlementScope, period: Period): Promise<Settlement> {
  const from = instant(period.from, 'from');
  const to = instant(period.to, 'to');
  if (from && to && from >= to) throw new AppError('REPORT_RANGE_INVALID', 'from must be before to', { from: period.from, to: period.to });
  const rows = await db.query<LineRow>(LINES, [scope.allianceOfferId ?? null, scope.partnerId ?? null, scope.brandId ?? null, from, to]);
  const lines = rows.map((r): SettlementLine => ({
    allianceOfferId: r.offer_id,
    offerTitle: r.title,
    partnerId: r.partner_id,
    brandId: r.brand_id,
    brandName: r.brand_name,
    storeId: r.store_id,
    storeName: r.store_name,
    faceValue: Number(r.face_value_cents) / 100,
    issued: r.issued,
    sent: r.sent,
    delivered: r.delivered,
    redeemed: r.redeemed,
    faceValueRedeemed: (r.redeemed * Number(r.face_value_cents)) / 100,
  }));
  const cents = rows.reduce((sum, r) => sum + r.redeemed * Number(r.face_value_cents), 0);
  const sum = (k: 'issued' | 'sent' | 'delivered' | 'redeemed') => lines.reduce((n, l) => n + l[k], 0);
  return {
    period: { from: from?.toISOString() ?? null, to: to?.toISOString() ?? null },
    scope,
    lines,
    totals: { issued: sum('issued'), sent: sum('sent'), delivered: sum('delivered'), redeemed: sum('redeemed'), faceValueRedeemed: cents / 100 },
  };
}

/** A merchant's settlement: a partner's, of all its offers; a brand's, of the alliance coupons its campaigns issued. */
export async function merchantSettlement(db: Sql, merchantId: string, period: Period): Promise<Settlement> {
  const [m] = await db.query<{ kind: 'brand' | 'partner' }>('SELECT kind FROM merchants WHERE id = $1', [merchantId]);
  if (!m) throw new AppError('MERCHANT_NOT_FOUND', `merchant ${merchantId} does not exist`);
  return settlement(db, m.kind === 'partner' ? { partnerId: merchantId } : { brandId: merchantId }, period);
}

// CSV (RFC 4180): CRLF line ends; a field with a comma, a quote or a line break is quoted, its quotes doubled.
// A text field a spreadsheet would run as a formula (=, +, -, @ first) gets a leading apostrophe: titles and
// names come from other merchants.
const COLUMNS = [
  'alliance_offer_id', 'offer_title', 'partner_id', 'brand_id', 'brand_name', 'store_id', 'store_name', 'face_value',
  'issued', 'sent', 'delivered', 'redeemed', 'face_value_redeemed',
] as const;

function field(value: string | number | null): string {
  if (value === null) return '';
  let s = typeof value === 'number' ? String(value) : value;
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

const money = (n: number) => n.toFixed(2);

export function settlementCsv(s: Settlement): string {
  const rows: Array<Array<string | number | null>> = [
    [...COLUMNS],
    ...s.lines.map((l) => [
      l.allianceOfferId, l.offerTitle, l.partnerId, l.brandId, l.brandName, l.storeId, l.storeName, money(l.faceValue),
      l.issued, l.sent, l.delivered, l.redeemed, money(l.faceValueRedeemed),
    ]),
    ['total', null, null, null, null, null, null, null, s.totals.issued, s.totals.sent, s.totals.delivered, s.totals.redeemed, money(s.totals.faceValueRedeemed)],
  ];
  return rows.map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}
