import { randomInt } from 'node:crypto';
import { AppError } from '../errors.js';
import { retryingAborted, type Database, type Sql } from '../db/database.js';

// Crockford base32: no I, L, O or U, so a code read aloud or typed at a till is hard to get wrong.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** Random characters: 12 x 5 bits = 60 bits from the cryptographic generator. */
export const RANDOM_LENGTH = 12;
/** The random part and one check character. */
export const CODE_LENGTH = RANDOM_LENGTH + 1;

/**
 * Luhn mod 32 over the alphabet: any single mistyped character, and most swaps of neighbours, change it,
 * so a till can say "typo" without asking the database.
 */
export function checkCharacter(body: string): string {
  let sum = 0;
  let double = true;
  for (let i = body.length - 1; i >= 0; i--) {
    let v = ALPHABET.indexOf(body[i]!);
    if (double) {
      v *= 2;
      v = Math.floor(v / 32) + (v % 32);
    }
    sum += v;
    double = !double;
  }
  return ALPHABET[(32 - (sum % 32)) % 32]!;
}

export function newCouponCode(): string {
  let code = '';
  for (let i = 0; i < RANDOM_LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
  return code + checkCharacter(code);
}

/** Whether a normalised code has the right length, alphabet and check character. */
export function isWellFormedCode(code: string): boolean {
  if (code.length !== CODE_LENGTH || [...code].some((c) => !ALPHABET.includes(c))) return false;
  return checkCharacter(code.slice(0, -1)) === code.slice(-1);
}

/** What a QR code or barcode on the member's screen carries: QR alphanumeric mode, scanned straight into a till. */
export const qrPayload = (code: string) => `COUPON:${code}`;

/** What a cashier types, made canonical: case, spaces and dashes ignored; O read as 0, I and L as 1. */
export function normalizeCouponCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
}

/** The code a till sent (as typed, or the QR payload), made canonical; COUPON_CODE_INVALID if it cannot be one. */
export function couponCodeOf(sent: string): string {
  const code = normalizeCouponCode(sent.replace(/^COUPON:/i, ''));
  if (!isWellFormedCode(code)) throw new AppError('COUPON_CODE_INVALID', `${sent} is not a coupon code: a character is wrong or missing`);
  return code;
}

export interface Redemption {
  id: string;
  couponCode: string;
  memberId: string;
  campaignId: string;
  storeId: string;
  /** The registered till (POST /stores/:id/tills) that redeemed it, if the request named one. */
  tillId: string | null;
  tillRef: string | null;
  transactionId: string | null;
  requestId: string | null;
  /** What the sale was worth, as the till reported it (programme currency); null if not reported. */
  amount: number | null;
  redeemedAt: string;
}

export interface CouponRow {
  id: string;
  code: string;
  member_id: string;
  campaign_id: string;
  expires_at: Date;
  /** A campaign coupon's store, when its campaign names one; null for an alliance coupon. */
  campaign_store_id: string | null;
  max_redemptions: number | null;
  /** Whose coupon it is: the campaign's brand, or for an alliance coupon the partner. */
  owner_id: string;
  alliance_offer_id: string | null;
  offer_max_redemptions: number | null;
}

interface RedemptionRow {
  id: string;
  coupon_id: string;
  store_id: string;
  till_id: string | null;
  till_ref: string | null;
  transaction_id: string | null;
  request_id: string | null;
  amount: number | null;
  redeemed_at: Date;
}

export interface RedeemInput {
  code: string;
  storeId: string;
  /** A registered till of the store. */
  tillId?: string;
  tillRef?: string;
  /** The till's own id for the sale: unique per store. */
  transactionId?: string;
  /** The till's id for this request: the same request sent again gets the same answer. */
  requestId?: string;
  /** What the sale was worth, for attribution and RFM monetary value; rounded to cents. */
  amount?: number;
}

const view = (r: RedemptionRow, c: Pick<CouponRow, 'code' | 'member_id' | 'campaign_id'>): Redemption => ({
  id: r.id, couponCode: c.code, memberId: c.member_id, campaignId: c.campaign_id, storeId: r.store_id, tillId: r.till_id ?? null, tillRef: r.till_ref,
  transactionId: r.transaction_id, requestId: r.request_id, amount: r.amount ?? null, redeemedAt: r.redeemed_at.toISOString(),
});

/** What the redemption's checks found, in one row: from the per-coupon statement or a row of a batch. */
export interface Checked {
  /** The redemption this request id made before, and which of this request's fields differ from it. */
  earlier: (RedemptionRow & { code: string; member_id: string; campaign_id: string; differs: string[] }) | null;
  live: { redeemed_at: string; store_id: string } | null;
  store_merchant_id: string | null;
  till_store_id: string | null;
  till_merchant_id: string | null;
  offer_store_ids: string[] | null;
  budget_ok: boolean;
  offer_budget_ok: boolean;
  /** The till's transaction id already redeemed a coupon at the store (a batch checks; a transaction hears it from the constraint). */
  transaction_taken?: boolean;
  inserted: (Omit<RedemptionRow, 'redeemed_at'> & { redeemed_at: string }) | null;
}

const asRow = <T extends { redeemed_at: string | Date }>(x: T) => ({ ...x, redeemed_at: new Date(x.redeemed_at) }) as unknown as RedemptionRow;

/** The answer for a redemption a statement has written (and committed): it stands, whatever else is said of it. */
export const insertedView = (inserted: NonNullable<Checked['inserted']>, coupon: Pick<CouponRow, 'code' | 'member_id' | 'campaign_id'>): Redemption =>
  view(asRow(inserted), coupon);

/**
 * SQL for the fields of a request that differ from the redemption its request id made before (`r`, a redemptions
 * row), given the request's own values as SQL expressions: an empty array for the same request sent again. The
 * amount is compared as stored, rounded to cents; the coupon is compared apart (by its canonical code).
 */
export const differsSql = (r: string, v: { tillId: string; tillRef: string; transactionId: string; amount: string }) => `array_remove(ARRAY[
  CASE WHEN ${r}.till_id IS DISTINCT FROM ${v.tillId} THEN 'tillId' END,
  CASE WHEN ${r}.till_ref IS DISTINCT FROM ${v.tillRef} THEN 'tillRef' END,
  CASE WHEN ${r}.transaction_id IS DISTINCT FROM ${v.transactionId} THEN 'transactionId' END,
  CASE WHEN ${r}.amount IS DISTINCT FROM ${v.amount}::numeric(12, 2) THEN 'amount' END]::text[], NULL)`;

/**
 * A request id names one request: sent again, it gets the first answer; with another coupon or other fields, it is
 * a till's mistake (a reused id) and must not be answered as if it had been redeemed.
 */
function checkSameRequest(code: string, input: RedeemInput, earlier: { code: string; differs: string[] }): void {
  if (earlier.code !== code) {
    throw new AppError('REQUEST_ID_REUSED', `request ${input.requestId} already redeemed another coupon`, { couponCode: earlier.code });
  }
  if (earlier.differs.length > 0) {
    throw new AppError('REQUEST_ID_REUSED', `request ${input.requestId} was made before with another ${earlier.differs.join(', ')}`, { fields: earlier.differs });
  }
}

/**
 * The answer to a redemption, from what its statement found: the redemption it made (or made before, for the
 * same request), or the error that stopped it, in this order. Shared by both paths, so a batch answers exactly
 * as a till's own transaction would.
 */
export function answer(code: string, input: RedeemInput, coupon: CouponRow, r: Checked, now: Date, callerMerchantId: string | null): Redemption {
  // A store that is not the caller's does not exist for it (the caller's merchant; null for an administrator).
  if (!r.store_merchant_id || (callerMerchantId !== null && r.store_merchant_id !== callerMerchantId)) {
    throw new AppError('STORE_NOT_FOUND', `store ${input.storeId} does not exist`);
  }
  // Another merchant's coupon: before anything that would tell it exists (even a reused request id).
  if (r.store_merchant_id !== coupon.owner_id) {
    if (callerMerchantId !== null) throw new AppError('COUPON_NOT_FOUND', `no coupon has code ${code}`);
    throw new AppError('COUPON_NOT_VALID_AT_STORE', `coupon ${code} belongs to merchant ${coupon.owner_id}, not to the store's merchant`, {
      merchantId: coupon.owner_id,
    });
  }
  // The same request, sent again (also while the first was still running, waiting on the lock): the first answer.
  if (r.earlier) {
    checkSameRequest(code, input, r.earlier);
    return view(asRow(r.earlier), r.earlier);
  }
  if (input.tillId && r.till_store_id !== input.storeId) {
    if (!r.till_store_id || (callerMerchantId !== null && r.till_merchant_id !== callerMerchantId)) {
      throw new AppError('TILL_NOT_FOUND', `till ${input.tillId} does not exist`);
    }
    throw new AppError('TILL_AT_OTHER_STORE', `till ${input.tillId} is not at store ${input.storeId}`, { tillStoreId: r.till_store_id });
  }
  if (r.live) {
    throw new AppError('COUPON_ALREADY_REDEEMED', `coupon ${code} was already redeemed`, {
      redeemedAt: new Date(r.live.redeemed_at).toISOString(),
      storeId: r.live.store_id,
    });
  }
  if (now >= coupon.expires_at) {
    throw new AppError('COUPON_EXPIRED', `coupon ${code} expired at ${coupon.expires_at.toISOString()}`, {
      expiresAt: coupon.expires_at.toISOString(),
    });
  }
  // The stores named below are the coupon owner's, which is the store's merchant: never another merchant's.
  if (coupon.campaign_store_id && coupon.campaign_store_id !== input.storeId) {
    throw new AppError('COUPON_NOT_VALID_AT_STORE', `coupon ${code} is valid only at store ${coupon.campaign_store_id}`, {
      validAt: coupon.campaign_store_id,
    });
  }
  if (r.offer_store_ids) {
    throw new AppError('COUPON_NOT_VALID_AT_STORE', `coupon ${code} is valid only at the alliance offer's stores`, { validAtStores: r.offer_store_ids });
  }
  if (!r.offer_budget_ok) {
    throw new AppError('BUDGET_EXHAUSTED', `the alliance offer's ${coupon.offer_max_redemptions} redemptions are used up`, {
      allianceOfferId: coupon.alliance_offer_id, maxRedemptions: coupon.offer_max_redemptions,
    });
  }
  if (r.transaction_taken) {
    throw new AppError('TRANSACTION_ID_TAKEN', `transaction ${input.transactionId} already redeemed a coupon at this store`);
  }
  if (!r.budget_ok || !r.inserted) {
    throw new AppError('BUDGET_EXHAUSTED', `the campaign's ${coupon.max_redemptions} redemptions are used up`, { maxRedemptions: coupon.max_redemptions });
  }
  return insertedView(r.inserted, coupon);
}

/** The redemption a store made under this request id, if any, and which of this request's fields differ from it. */
async function byRequest(db: Sql, input: RedeemInput): Promise<{ r: RedemptionRow; c: CouponRow; differs: string[] } | undefined> {
  const [r] = await db.query<RedemptionRow & { differs: string[] }>(
    `SELECT r.*, ${differsSql('r', { tillId: '$3::uuid', tillRef: '$4::text', transactionId: '$5::text', amount: '$6::numeric' })} AS differs
       FROM redemptions r WHERE r.store_id = $1 AND r.request_id = $2`,
    [input.storeId, input.requestId, input.tillId ?? null, input.tillRef ?? null, input.transactionId ?? null, input.amount ?? null],
  );
  if (!r) return undefined;
  const [c] = await db.query<CouponRow>('SELECT id, code, member_id, campaign_id FROM coupons WHERE id = $1', [r.coupon_id]);
  return { r, c: c!, differs: r.differs };
}

/**
 * Redeems a coupon once. The database holds it to that: the coupon's row is locked, each redemption carries
 * its attempt number (1 + the voids before it) under a unique constraint, and a campaign's (and an alliance
 * offer's) redemption budget moves by an atomic conditional update. A request id sent again returns the first answer.
 *
 * A coupon is redeemable only at stores of the merchant that owns it: a campaign's at its brand's stores (only at
 * the campaign's store when it names one), an alliance coupon at its offer's stores. At another merchant's store
 * the caller (`callerMerchantId`; null for an administrator) is told the code does not exist, exactly as for an
 * unknown code; only an administrator hears that it is valid elsewhere.
 */
export function redeemCoupon(db: Database, input: RedeemInput, now: Date, callerMerchantId: string | null = null): Promise<Redemption> {
  // A deadlock's victim kept nothing: it is simply run again.
  return retryingAborted(() => redeemOnce(db, input, now, callerMerchantId));
}

/** The per-coupon statement's parameters: $15 the till, $8 its reference, $10 the transaction, $11 the amount. */
const EARLIER_DIFFERS = differsSql('r', { tillId: '$15::uuid', tillRef: '$8::text', transactionId: '$10::text', amount: '$11::numeric' });

async function redeemOnce(db: Database, input: RedeemInput, now: Date, callerMerchantId: string | null): Promise<Redemption> {
  const code = couponCodeOf(input.code);
  const replay = async (): Promise<Redemption | undefined> => {
    if (!input.requestId) return undefined;
    const earlier = await byRequest(db, input);
    if (!earlier) return undefined;
    checkSameRequest(code, input, { code: earlier.c.code, differs: earlier.differs });
    return view(earlier.r, earlier.c);
  };
  // Three round trips: BEGIN with the coupon's lock, one statement that checks and writes, COMMIT.
  const opening = {
    // The coupon's row locked first: the next statement reads what a till that got the lock before us committed.
    // A campaign with a redemption budget gets its counter (from the live rows) if it has none; one without a
    // budget loses any counter an earlier version left, which would go stale.
    text: `WITH c AS (
             SELECT c.id, c.code, c.member_id, c.campaign_id, c.expires_at,
                    CASE WHEN c.alliance_offer_id IS NULL THEN (camp.definition->>'storeId')::uuid::text END AS campaign_store_id,
                    (camp.definition->'budget'->>'maxRedemptions')::int AS max_redemptions,
                    coalesce(ao.merchant_id, camp.merchant_id) AS owner_id, c.alliance_offer_id, ao.max_redemptions AS offer_max_redemptions
               FROM coupons c JOIN campaigns camp ON camp.id = c.campaign_id LEFT JOIN alliance_offers ao ON ao.id = c.alliance_offer_id
              WHERE c.code = $1
              FOR UPDATE OF c),
           counter AS (
             INSERT INTO campaign_redemption_counts (campaign_id, redeemed)
             SELECT c.campaign_id, (SELECT count(*) FROM live_redemptions r JOIN coupons k ON k.id = r.coupon_id WHERE k.campaign_id = c.campaign_id)
               FROM c WHERE c.max_redemptions IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM campaign_redemption_counts n WHERE n.campaign_id = c.campaign_id)
             ON CONFLICT DO NOTHING),
           gone AS (DELETE FROM campaign_redemption_counts WHERE campaign_id = (SELECT campaign_id FROM c WHERE max_redemptions IS NULL))
           SELECT * FROM c`,
    values: [code],
  };
  try {
    return await db.transaction(async (tx, opened) => {
      const coupon = opened[0] as CouponRow | undefined;
      if (!coupon) throw new AppError('COUPON_NOT_FOUND', `no coupon has code ${code}`);
      // Every check, the budgets' conditional updates and the insert, in one statement: the insert and the budgets
      // move only if every check passes; what failed comes back, and is answered in the order below.
      const [r] = await tx.query<Checked>(
        `WITH earlier AS (
           SELECT r.*, c.code, c.member_id, c.campaign_id, ${EARLIER_DIFFERS} AS differs FROM redemptions r JOIN coupons c ON c.id = r.coupon_id
            WHERE $9::text IS NOT NULL AND r.store_id = $2 AND r.request_id = $9),
         live AS (SELECT redeemed_at, store_id FROM live_redemptions WHERE coupon_id = $1),
         store AS (SELECT merchant_id FROM stores WHERE id = $2),
         till AS (SELECT t.store_id, s.merchant_id FROM tills t JOIN stores s ON s.id = t.store_id WHERE t.id = $15::uuid),
         ok AS (
           SELECT NOT EXISTS (SELECT 1 FROM earlier) AND NOT EXISTS (SELECT 1 FROM live) AND $4::timestamptz < $5::timestamptz
                  AND coalesce((SELECT merchant_id = $12::uuid FROM store), false) AND ($6::uuid IS NULL OR $6::uuid = $2)
                  AND ($16::uuid IS NULL OR coalesce((SELECT merchant_id = $16::uuid FROM store), false))
                  AND ($13::uuid IS NULL OR EXISTS (SELECT 1 FROM alliance_offer_stores WHERE offer_id = $13::uuid AND store_id = $2))
                  AND ($15::uuid IS NULL OR coalesce((SELECT store_id = $2 FROM till), false)) AS passed),
         budget AS (
           UPDATE campaign_redemption_counts SET redeemed = redeemed + 1
            WHERE campaign_id = $3 AND $7::int IS NOT NULL AND redeemed < $7 AND (SELECT passed FROM ok) RETURNING 1),
         offer_budget AS (
           UPDATE alliance_offers SET redeemed = redeemed + 1
            WHERE id = $13::uuid AND $14::int IS NOT NULL AND redeemed < $14 AND (SELECT passed FROM ok) RETURNING 1),
         inserted AS (
           INSERT INTO redemptions (coupon_id, store_id, till_ref, transaction_id, request_id, redeemed_at, attempt, amount, till_id)
           SELECT $1, $2, $8, $10, $9, $4, 1 + (SELECT count(*) FROM redemption_voids WHERE coupon_id = $1), $11, $15::uuid
            WHERE (SELECT passed FROM ok) AND ($7::int IS NULL OR EXISTS (SELECT 1 FROM budget))
              AND ($14::int IS NULL OR EXISTS (SELECT 1 FROM offer_budget))
           RETURNING *)
         SELECT (SELECT row_to_json(earlier) FROM earlier) AS earlier, (SELECT row_to_json(live) FROM live) AS live,
                (SELECT merchant_id FROM store) AS store_merchant_id, (SELECT store_id FROM till) AS till_store_id,
                (SELECT merchant_id FROM till) AS till_merchant_id,
                CASE WHEN $13::uuid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM alliance_offer_stores WHERE offer_id = $13::uuid AND store_id = $2)
                     THEN ARRAY(SELECT store_id FROM alliance_offer_stores WHERE offer_id = $13::uuid ORDER BY store_id)::text[] END AS offer_store_ids,
                ($7::int IS NULL OR EXISTS (SELECT 1 FROM budget)) AS budget_ok, ($14::int IS NULL OR EXISTS (SELECT 1 FROM offer_budget)) AS offer_budget_ok,
                (SELECT row_to_json(inserted) FROM inserted) AS inserted`,
        [coupon.id, input.storeId, coupon.campaign_id, now, coupon.expires_at, coupon.campaign_store_id, coupon.max_redemptions,
          input.tillRef ?? null, input.requestId ?? null, input.transactionId ?? null, input.amount ?? null,
          coupon.owner_id, coupon.alliance_offer_id, coupon.offer_max_redemptions, input.tillId ?? null, callerMerchantId],
      );
      return answer(code, input, coupon, r!, now, callerMerchantId);
    }, opening);
  } catch (err) {
    const constraint = (err as { constraint?: string }).constraint;
    // Two tills (or one till twice) raced past the checks: the constraint decided; answer as the winner did.
    if (constraint === 'redemptions_request') {
      const answer = await replay();
      if (answer) return answer;
    }
    if (constraint === 'redemptions_transaction') {
      throw new AppError('TRANSACTION_ID_TAKEN', `transaction ${input.transactionId} already redeemed a coupon at this store`);
    }
    if (constraint === 'redemptions_coupon_attempt') throw new AppError('COUPON_ALREADY_REDEEMED', `coupon ${code} was already redeemed`);
    throw err;
  }
}

export interface Void {
  id: string;
  redemptionId: string;
  couponCode: string;
  storeId: string;
  reason: string | null;
  voidedAt: string;
}

/** Reverses a redemption, at the store that made it, within the void window: a new row; the coupon is live again. */
export function voidRedemption(db: Database, redemptionId: string, input: { storeId: string; reason?: string }, now: Date, windowMinutes: number): Promise<Void> {
  return retryingAborted(() => voidOnce(db, redemptionId, input, now, windowMinutes));
}

async function voidOnce(db: Database, redemptionId: string, input: { storeId: string; reason?: string }, now: Date, windowMinutes: number): Promise<Void> {
  try {
    return await db.transaction(async (tx) => {
      const [r] = await tx.query<RedemptionRow & { code: string; campaign_id: string; alliance_offer_id: string | null }>(
        `SELECT r.*, c.code, c.campaign_id, c.alliance_offer_id FROM redemptions r JOIN coupons c ON c.id = r.coupon_id WHERE r.id = $1 FOR UPDATE OF c`,
        [redemptionId],
      );
      if (!r) throw new AppError('REDEMPTION_NOT_FOUND', `redemption ${redemptionId} does not exist`);
      if (r.store_id !== input.storeId) throw new AppError('REDEMPTION_AT_OTHER_STORE', 'only the store that redeemed a coupon can void it');
      if (now.getTime() - r.redeemed_at.getTime() > windowMinutes * 60_000) {
        throw new AppError('VOID_WINDOW_PASSED', `a redemption can be voided within ${windowMinutes} minutes`, { redeemedAt: r.redeemed_at.toISOString() });
      }
      const [v] = await tx.query<{ id: string; voided_at: Date }>(
        'INSERT INTO redemption_voids (redemption_id, coupon_id, store_id, reason, voided_at) VALUES ($1, $2, $3, $4, $5) RETURNING id, voided_at',
        [r.id, r.coupon_id, input.storeId, input.reason ?? null, now],
      );
      // The budgets' counters give one back: the campaign's, and an alliance offer's where it keeps one.
      await tx.query(
        `WITH offer AS (UPDATE alliance_offers SET redeemed = redeemed - 1 WHERE id = $2::uuid AND max_redemptions IS NOT NULL)
         UPDATE campaign_redemption_counts SET redeemed = redeemed - 1 WHERE campaign_id = $1`,
        [r.campaign_id, r.alliance_offer_id],
      );
      return { id: v!.id, redemptionId: r.id, couponCode: r.code, storeId: input.storeId, reason: input.reason ?? null, voidedAt: v!.voided_at.toISOString() };
    });
  } catch (err) {
    if ((err as { constraint?: string }).constraint === 'redemption_voids_redemption_id_key') {
      throw new AppError('REDEMPTION_ALREADY_VOIDED', `redemption ${redemptionId} was already voided`);
    }
    throw err;
  }
}
