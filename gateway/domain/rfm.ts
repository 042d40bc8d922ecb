// A member's RFM profile, read from their live redemptions: only with `profiling` consent. Without it nothing
// is read, and the status says which consent reason withheld it.
import { RFM_WINDOW_DAYS, rfmProfile, type RfmFacts, type RfmStatus } from '../../campaign-rules/index.js';
import { checkConsent, type ConsentState } from '../../consent/index.js';
import type { Sql } from '../db/database.js';

/** Recency, frequency and amount of the member's live redemptions up to `at`, by one aggregate. */
export async function rfmFacts(db: Sql, memberId: string, at: Date): Promise<RfmFacts> {
  const [row] = await db.query<{ last: Date | null; n: number; amount: number }>(
    `SELECT max(r.redeemed_at) AS last,
            count(*) FILTER (WHERE r.redeemed_at > $2::timestamptz - make_interval(days => $3::int))::int AS n,
            coalesce(sum(r.amount) FILTER (WHERE r.redeemed_at > $2::timestamptz - make_interval(days => $3::int)), 0)::float8 AS amount
       FROM live_redemptions r JOIN coupons c ON c.id = r.coupon_id
      WHERE c.member_id = $1 AND r.redeemed_at <= $2`,
    [memberId, at, RFM_WINDOW_DAYS],
  );
  return { lastRedemptionAt: row?.last ?? null, redemptions: row?.n ?? 0, amount: row?.amount ?? 0 };
}

/** The member's RFM profile at `at`, or why there is none (profiling consent missing or withdrawn). */
export async function memberRfm(db: Sql, memberId: string, consent: ConsentState, at: Date): Promise<RfmStatus> {
  const profiling = checkConsent(consent, ['profiling']);
  if (!profiling.allowed) return { status: 'withheld', reason: profiling.reason };
  return { status: 'profiled', profile: rfmProfile(await rfmFacts(db, memberId, at), at) };
}
