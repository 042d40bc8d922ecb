// Coupons of one campaign written straight into the tables (one member and one decision each), for tests and
// benchmarks that need many codes without a check-in per code.
import type { Sql } from '../../gateway/db/database.js';

export async function seedCoupons(db: Sql, campaignId: string, codes: readonly string[], validFor = '7 days'): Promise<void> {
  for (let from = 0; from < codes.length; from += 5_000) {
    await db.query(
      `WITH m AS (INSERT INTO members (time_zone) SELECT 'UTC' FROM unnest($1::text[]) RETURNING id),
            n AS (SELECT id, row_number() OVER () AS i FROM m),
            d AS (INSERT INTO decisions (member_id, trigger, occurred_at, outcome, campaign_id, campaign_version, trace)
                  SELECT id, 'checkin', now(), 'offer_queued', $2, 1, '{}' FROM n RETURNING id, member_id),
            dn AS (SELECT d.id, d.member_id, n.i FROM d JOIN n ON n.id = d.member_id)
       INSERT INTO coupons (code, offer_id, campaign_id, member_id, decision_id, issued_at, expires_at)
       SELECT (($1::text[])[dn.i]), (SELECT id FROM offers WHERE campaign_id = $2 ORDER BY version DESC LIMIT 1), $2, dn.member_id, dn.id,
              now(), now() + $3::interval
         FROM dn`,
      [codes.slice(from, from + 5_000), campaignId, validFor],
    );
  }
}
