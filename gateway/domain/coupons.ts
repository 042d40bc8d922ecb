import { randomInt } from 'node:crypto';
import { AppError } from '../errors.js';
import type { Database } from '../db/database.js';

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

export interface Redemption {
  id: string;
  couponCode: string;
  memberId: string;
  campaignId: string;
  storeId: string;
  tillRef: string | null;
  redeemedAt: string;
}

interface CouponRow {
  id: string;
  code: string;
  member_id: string;
  campaign_id: string;
  expires_at: Date;
  campaign_store_id: string | null;
}

/** Redeems a coupon once. The unique coupon_id on redemptions makes a second redemption fail at any till. */
export async function redeemCoupon(
  db: Database,
  input: { code: string; storeId: string; tillRef?: string },
  now: Date,
): Promise<Redemption> {
  const code = normalizeCouponCode(input.code.replace(/^COUPON:/i, ''));
  if (!isWellFormedCode(code)) {
    throw new AppError('COUPON_CODE_INVALID', `${input.code} is not a coupon code: a character is wrong or missing`);
  }
  return db.transaction(async (tx) => {
    // Lock the coupon first; the redemption is read by a later statement, so a till that waited on the
    // lock sees the redemption the winner committed (READ COMMITTED takes a new snapshot per statement).
    const [coupon] = await tx.query<CouponRow>(
      `SELECT c.id, c.code, c.member_id, c.campaign_id, c.expires_at, camp.definition->>'storeId' AS campaign_store_id
         FROM coupons c JOIN campaigns camp ON camp.id = c.campaign_id
        WHERE c.code = $1
        FOR UPDATE OF c`,
      [code],
    );
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `no coupon has code ${code}`);
    const [earlier] = await tx.query<{ redeemed_at: Date; store_id: string }>(
      'SELECT redeemed_at, store_id FROM redemptions WHERE coupon_id = $1',
      [coupon.id],
    );
    if (earlier) {
      throw new AppError('COUPON_ALREADY_REDEEMED', `coupon ${code} was already redeemed`, {
        redeemedAt: earlier.redeemed_at.toISOString(),
        storeId: earlier.store_id,
      });
    }
    if (now >= coupon.expires_at) {
      throw new AppError('COUPON_EXPIRED', `coupon ${code} expired at ${coupon.expires_at.toISOString()}`, {
        expiresAt: coupon.expires_at.toISOString(),
      });
    }
    const [store] = await tx.query('SELECT 1 FROM stores WHERE id = $1', [input.storeId]);
    if (!store) throw new AppError('STORE_NOT_FOUND', `store ${input.storeId} does not exist`);
    if (coupon.campaign_store_id && coupon.campaign_store_id !== input.storeId) {
      throw new AppError('COUPON_NOT_VALID_AT_STORE', `coupon ${code} is valid only at store ${coupon.campaign_store_id}`, {
        validAt: coupon.campaign_store_id,
      });
    }
    const [row] = await tx.query<{ id: string; redeemed_at: Date }>(
      `INSERT INTO redemptions (coupon_id, store_id, till_ref, redeemed_at) VALUES ($1, $2, $3, $4)
       RETURNING id, redeemed_at`,
      [coupon.id, input.storeId, input.tillRef ?? null, now],
    );
    return {
      id: row!.id,
      couponCode: coupon.code,
      memberId: coupon.member_id,
      campaignId: coupon.campaign_id,
      storeId: input.storeId,
      tillRef: input.tillRef ?? null,
      redeemedAt: row!.redeemed_at.toISOString(),
    };
  });
}
