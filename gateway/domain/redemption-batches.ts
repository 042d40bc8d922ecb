// Group commit for redemptions: the tills' requests that arrive while earlier ones are in the database go
// together, as one statement in one round trip. Each request is still judged on its own (answer() in
// coupons.ts, the same as a till's own transaction), and the database still holds each coupon to one live
// redemption: a batch inserts under the same unique constraints, so two batches that race for a coupon
// cannot both win. Whatever a batch cannot settle alone (a coupon with a redemption budget, or a batch that
// lost a race on a constraint, or that PostgreSQL refused for one request's value) takes the per-coupon
// transaction, redeemCoupon().
import { AppError } from '../errors.js';
import { performance } from 'node:perf_hooks';
import type { Database } from '../db/database.js';
import {
  answer, couponCodeOf, differsSql, insertedView, redeemCoupon,
  type Checked, type CouponRow, type RedeemInput, type Redemption,
} from './coupons.js';

/** Rows per statement: enough to carry a busy store's rush, few enough that one slow row delays little. */
const MAX_BATCH = 64;
/**
 * Statements at once per gateway. One at a time makes the largest batches, which is what costs least (on 2 cores,
 * 16 tills: 2,090 redemptions/s with one, 1,650-1,800 with two). Another starts when a full batch waits, or when
 * the statements running have taken longer than STALL_MS (one may be waiting on a lock another till holds).
 */
const MAX_IN_FLIGHT = 4;
const STALL_MS = 50;

interface Pending {
  code: string;
  input: RedeemInput;
  now: Date;
  caller: string | null;
  /** What two requests of one batch must not share: the coupon, the request id and the transaction id (per store). */
  keys: string[];
  resolve: (r: Redemption) => void;
  reject: (err: unknown) => void;
}

type Row = CouponRow & Checked & { n: number; found: boolean; deferred: boolean };

// Every check of the per-coupon statement, for many requests at once. A redemption budget moves once per
// campaign (or alliance offer) and batch, by all of the batch's passing requests at once, and only if all of
// them fit; if not, they are deferred to transactions of their own, where the counter moves one by one up to the
// last redemption it allows. Also deferred: a coupon whose campaign and alliance offer both have a budget (the
// two counters must move together or not at all), and a campaign whose counter must be made or removed first.
// Coupons are locked (FOR KEY SHARE, as the insert's foreign key would) before any counter, the order a till's
// own transaction takes them in; the insert takes the passing rows in coupon order.
//
// Each lookup is written so that it can only be an index probe per request (LATERAL ... LIMIT 1, scalar
// subqueries rather than EXISTS): the planner cannot see how many rows the parameter holds, and with a join or
// a hashed EXISTS it may read all the coupons or all the redemptions instead (seen: 8.8 ms for 8 requests
// against 20,000 coupons, instead of 1.5 ms for 16).
export const BATCH_SQL = `
WITH input AS (
  SELECT * FROM json_to_recordset($1::json)
    AS i(n int, code text, store_id uuid, till_id uuid, till_ref text, transaction_id text, request_id text, amount numeric, caller uuid, at timestamptz)),
c AS (
  SELECT i.*, k.id, k.member_id, k.campaign_id, k.expires_at, k.alliance_offer_id, k.campaign_store_id, k.max_redemptions, k.owner_id,
         k.offer_max_redemptions, k.id IS NOT NULL AS found, coalesce(k.deferred, false) AS deferred
    FROM input i
    LEFT JOIN LATERAL (
      SELECT k.id, k.member_id, k.campaign_id, k.expires_at, k.alliance_offer_id,
             CASE WHEN k.alliance_offer_id IS NULL THEN (camp.definition->>'storeId')::uuid::text END AS campaign_store_id,
             (camp.definition->'budget'->>'maxRedemptions')::int AS max_redemptions,
             coalesce(ao.merchant_id, camp.merchant_id) AS owner_id, ao.max_redemptions AS offer_max_redemptions,
             ((camp.definition->'budget'->>'maxRedemptions') IS NOT NULL AND ao.max_redemptions IS NOT NULL)
               OR ((camp.definition->'budget'->>'maxRedemptions') IS NOT NULL)
                  <> ((SELECT 1 FROM campaign_redemption_counts n WHERE n.campaign_id = k.campaign_id) IS NOT NULL) AS deferred
        FROM coupons k JOIN campaigns camp ON camp.id = k.campaign_id LEFT JOIN alliance_offers ao ON ao.id = k.alliance_offer_id
       WHERE k.code = i.code LIMIT 1 FOR KEY SHARE OF k) k ON true),
f AS (
  SELECT c.*,
         (SELECT row_to_json(e) FROM (
            SELECT r.*, k.code, k.member_id, k.campaign_id,
                   ${differsSql('r', { tillId: 'c.till_id', tillRef: 'c.till_ref', transactionId: 'c.transaction_id', amount: 'c.amount' })} AS differs
              FROM redemptions r JOIN coupons k ON k.id = r.coupon_id
             WHERE c.request_id IS NOT NULL AND r.store_id = c.store_id AND r.request_id = c.request_id LIMIT 1) e) AS earlier,
         (SELECT row_to_json(l) FROM (
            SELECT r.redeemed_at, r.store_id FROM redemptions r
             WHERE r.coupon_id = c.id AND (SELECT 1 FROM redemption_voids v WHERE v.redemption_id = r.id) IS NULL) l) AS live,
         (SELECT merchant_id FROM stores WHERE id = c.store_id) AS store_merchant_id,
         t.store_id AS till_store_id, t.merchant_id AS till_merchant_id,
         CASE WHEN c.alliance_offer_id IS NOT NULL
               AND (SELECT 1 FROM alliance_offer_stores WHERE offer_id = c.alliance_offer_id AND store_id = c.store_id) IS NULL
              THEN ARRAY(SELECT store_id FROM alliance_offer_stores WHERE offer_id = c.alliance_offer_id ORDER BY store_id)::text[] END AS offer_store_ids,
         c.transaction_id IS NOT NULL
           AND (SELECT 1 FROM redemptions r WHERE r.transaction_id IS NOT NULL AND r.store_id = c.store_id AND r.transaction_id = c.transaction_id) IS NOT NULL
           AS transaction_taken
    FROM c
    LEFT JOIN LATERAL (SELECT t.store_id, s.merchant_id FROM tills t JOIN stores s ON s.id = t.store_id WHERE t.id = c.till_id LIMIT 1) t ON true
   WHERE c.found AND NOT c.deferred),
ok AS (
  SELECT f.* FROM f
   WHERE NOT f.transaction_taken AND f.earlier IS NULL AND f.live IS NULL AND f.at < date_trunc('milliseconds', f.expires_at)
     AND coalesce(f.store_merchant_id = f.owner_id, false)
     AND (f.caller IS NULL OR coalesce(f.store_merchant_id = f.caller, false))
     AND (f.campaign_store_id IS NULL OR f.campaign_store_id::uuid = f.store_id)
     AND f.offer_store_ids IS NULL
     AND (f.till_id IS NULL OR coalesce(f.till_store_id = f.store_id, false))),
-- Counters are locked before they move, campaigns' then alliance offers', each in key order: the order a till's own
-- transaction (and a void) takes them in, so a batch and a till never wait on each other in a circle.
want AS (SELECT campaign_id, min(max_redemptions) AS max, count(*) AS k FROM ok WHERE max_redemptions IS NOT NULL GROUP BY campaign_id),
counters AS (
  SELECT n.campaign_id FROM campaign_redemption_counts n WHERE n.campaign_id IN (SELECT campaign_id FROM want) ORDER BY n.campaign_id FOR UPDATE),
budget AS (
  UPDATE campaign_redemption_counts n SET redeemed = n.redeemed + w.k FROM want w
   WHERE n.campaign_id = w.campaign_id AND n.campaign_id IN (SELECT campaign_id FROM counters) AND n.redeemed + w.k <= w.max
  RETURNING n.campaign_id),
-- Always true: it makes the offers wait until the campaigns' counters have moved.
offer_want AS (
  SELECT alliance_offer_id, min(offer_max_redemptions) AS max, count(*) AS k FROM ok
   WHERE offer_max_redemptions IS NOT NULL AND (SELECT count(*) FROM budget) >= 0 GROUP BY alliance_offer_id),
offers AS (SELECT o.id FROM alliance_offers o WHERE o.id IN (SELECT alliance_offer_id FROM offer_want) ORDER BY o.id FOR UPDATE),
offer_budget AS (
  UPDATE alliance_offers o SET redeemed = o.redeemed + w.k FROM offer_want w
   WHERE o.id = w.alliance_offer_id AND o.id IN (SELECT id FROM offers) AND o.redeemed + w.k <= w.max
  RETURNING o.id),
fits AS (
  SELECT ok.* FROM ok
   WHERE (ok.max_redemptions IS NULL OR ok.campaign_id IN (SELECT campaign_id FROM budget))
     AND (ok.offer_max_redemptions IS NULL OR ok.alliance_offer_id IN (SELECT id FROM offer_budget))),
inserted AS (
  INSERT INTO redemptions (coupon_id, store_id, till_ref, transaction_id, request_id, redeemed_at, attempt, amount, till_id)
  SELECT id, store_id, till_ref, transaction_id, request_id, at, 1 + (SELECT count(*) FROM redemption_voids v WHERE v.coupon_id = fits.id), amount, till_id
    FROM fits ORDER BY id
  RETURNING *)
SELECT c.n, c.found,
       c.deferred OR (c.n IN (SELECT n FROM ok) AND c.n NOT IN (SELECT n FROM fits))
         -- A taken transaction id with a budget: the till's own transaction says which it hears of first.
         OR (f.transaction_taken AND (c.max_redemptions IS NOT NULL OR c.offer_max_redemptions IS NOT NULL)) AS deferred, c.id, c.code, c.member_id, c.campaign_id, c.expires_at, c.campaign_store_id, c.max_redemptions,
       c.owner_id, c.alliance_offer_id, c.offer_max_redemptions,
       f.earlier, f.live, f.store_merchant_id, f.till_store_id, f.till_merchant_id, f.offer_store_ids, f.transaction_taken, true AS budget_ok, true AS offer_budget_ok,
       (SELECT row_to_json(x) FROM inserted x WHERE x.coupon_id = c.id) AS inserted
  FROM c LEFT JOIN f ON f.n = c.n`;

/**
 * SQLSTATE classes of errors that are not about the statement itself: the connection (08), the server's resources
 * (53), its state or an operator (57: shutdown, a cancelled or timed-out statement), the system (58) and the server's
 * own faults (XX), and a read-only standby after a failover (25006). A batch failing so is not retried request by
 * request: that would only multiply the load.
 */
const NOT_THE_STATEMENT = /^(08|53|57|58|XX|25006)/;

/** Whether PostgreSQL answered the statement with an error of the statement's own (so it kept nothing of it). */
const refusedByServer = (err: unknown): boolean => {
  const { code, severity } = (err ?? {}) as { code?: unknown; severity?: unknown };
  return typeof severity === 'string' && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !NOT_THE_STATEMENT.test(code);
};

/** Redemptions for one gateway process, batched; answers are the same as redeemCoupon()'s, request by request. */
export class RedemptionBatches {
  private readonly queue: Pending[] = [];
  /** When each statement being executed started. */
  private readonly running: number[] = [];
  private scheduled = false;
  private stallTimer: NodeJS.Timeout | undefined;
  /** Keys of the requests being redeemed (in a statement, or in a transaction of their own): a request that shares one waits. */
  private readonly busy = new Set<string>();
  /** Batch statements run, requests they carried, and requests that took their own transaction instead. */
  readonly stats = { statements: 0, batched: 0, alone: 0 };

  constructor(private readonly db: Database) {}

  redeem(input: RedeemInput, now: Date, callerMerchantId: string | null = null): Promise<Redemption> {
    let code: string;
    try {
      code = couponCodeOf(input.code);
    } catch (err) {
      return Promise.reject(err);
    }
    const storeId = input.storeId.toLowerCase();
    const keys = [`c:${code}`];
    if (input.requestId) keys.push(`r:${storeId}:${input.requestId}`);
    if (input.transactionId) keys.push(`t:${storeId}:${input.transactionId}`);
    return new Promise((resolve, reject) => {
      this.queue.push({ code, input: { ...input, storeId, tillId: input.tillId?.toLowerCase() }, now, caller: callerMerchantId, keys, resolve, reject });
      this.schedule();
    });
  }

  /** A pump after the current turn of the event loop: requests made in the same turn go in the same batch. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private mayStart(): boolean {
    if (this.running.length === 0) return true;
    if (this.running.length >= MAX_IN_FLIGHT) return false;
    return this.queue.length >= MAX_BATCH || performance.now() - Math.max(...this.running) > STALL_MS;
  }

  private pump(): void {
    while (this.queue.length > 0 && this.mayStart()) {
      const batch = this.take();
      if (batch.length === 0) return; // everything waiting shares a key with a request still being redeemed
      const started = performance.now();
      this.running.push(started);
      for (const p of batch) for (const k of p.keys) this.busy.add(k);
      void this.run(batch).finally(() => {
        this.running.splice(this.running.indexOf(started), 1);
        this.pump();
      });
    }
    // Requests still waiting behind a statement that takes long get one of their own once it has stalled.
    if (this.queue.length > 0 && this.running.length > 0 && this.running.length < MAX_IN_FLIGHT && !this.stallTimer) {
      this.stallTimer = setTimeout(() => {
        this.stallTimer = undefined;
        this.pump();
      }, STALL_MS + 1);
      this.stallTimer.unref();
    }
  }

  /** A request is answered: requests waiting on its keys may go. */
  private settled(p: Pending): void {
    for (const k of p.keys) this.busy.delete(k);
  }

  /** The oldest requests that share no key with each other or with a request being redeemed; the rest wait their turn. */
  private take(): Pending[] {
    const batch: Pending[] = [];
    const taken = new Set<string>();
    for (let i = 0; i < this.queue.length && batch.length < MAX_BATCH;) {
      const p = this.queue[i]!;
      if (p.keys.some((k) => this.busy.has(k) || taken.has(k))) {
        i++;
        continue;
      }
      for (const k of p.keys) taken.add(k);
      batch.push(p);
      this.queue.splice(i, 1);
    }
    return batch;
  }

  /** The batch's statement; its answers. Requests it defers take their own transactions after it, in the background. */
  private async run(batch: Pending[]): Promise<void> {
    let rows: Row[];
    this.stats.statements++;
    this.stats.batched += batch.length;
    try {
      rows = await this.db.query<Row>(BATCH_SQL, [JSON.stringify(batch.map((p, n) => ({
        n, code: p.code, store_id: p.input.storeId, till_id: p.input.tillId ?? null, till_ref: p.input.tillRef ?? null,
        transaction_id: p.input.transactionId ?? null, request_id: p.input.requestId ?? null, amount: p.input.amount ?? null,
        caller: p.caller, at: p.now.toISOString(),
      })))]);
    } catch (err) {
      // PostgreSQL refused the statement: a constraint decided a race with another gateway's batch or a till's own
      // transaction, the statement was a deadlock's victim, or one request carried a value the database cannot take
      // (a NUL, say). Nothing of it was written, and each request takes its own transaction, which answers as the
      // race's outcome says and fails only the request at fault. Any other failure (the connection lost, perhaps
      // after the commit) is each request's answer: a till told "already redeemed" of its own redemption would be
      // told wrong.
      const retry = refusedByServer(err);
      for (const p of batch) {
        if (retry) this.alone(p);
        else {
          p.reject(err);
          this.settled(p);
        }
      }
      return;
    }
    const byN = new Map(rows.map((r) => [r.n, r]));
    batch.forEach((p, n) => {
      const r = byN.get(n);
      if (r?.deferred) return this.alone(p);
      try {
        if (!r) throw new Error(`redemption batch: no answer for request ${n}`);
        if (!r.found) throw new AppError('COUPON_NOT_FOUND', `no coupon has code ${p.code}`);
        // A written redemption is committed: it is the answer, whatever a check might say of it.
        p.resolve(r.inserted ? insertedView(r.inserted, r) : answer(p.code, p.input, r, r, p.now, p.caller));
      } catch (err) {
        p.reject(err);
      }
      this.settled(p);
    });
  }

  private alone(p: Pending): void {
    this.stats.alone++;
    redeemCoupon(this.db, p.input, p.now, p.caller).then(p.resolve, p.reject).finally(() => {
      this.settled(p);
      this.pump();
    });
  }
}
