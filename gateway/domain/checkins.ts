// The decision path of a GPS check-in: consent first, then the rules engine, then consent for the channel.
import { evaluate, type Evaluation, type PresenceEvent } from '../../campaign-rules/index.js';
import { checkConsent, type ConsentCheck } from '../../consent/index.js';
import type { Sql } from '../db/database.js';
import { activeCampaigns } from './campaigns.js';
import { currentConsent } from './consents.js';
import { newCouponCode } from './coupons.js';
import type { Deps } from './deps.js';
import { composeSms } from './messages.js';
import { getMember } from './members.js';

/** A fix older than this has missed its moment: it is kept but triggers nothing. */
export const STALE_AFTER_MS = 10 * 60_000;
/** How long an offer SMS stays worth delivering once queued. */
export const OFFER_FRESHNESS_S = 15 * 60;

export type Outcome = 'offer_queued' | 'no_match' | 'not_sent' | 'dropped';

export interface Decision {
  id: string;
  memberId: string;
  trigger: 'checkin';
  checkinId: string | null;
  occurredAt: string;
  outcome: Outcome;
  reasonCode: string | null;
  campaignId: string | null;
  campaignVersion: number | null;
  trace: DecisionTrace;
  createdAt: string;
}

export interface DecisionTrace {
  consent: Partial<Record<'location' | 'sms_marketing', ConsentCheck>>;
  evaluation?: Evaluation;
  note?: string;
}

export interface CheckinInput {
  memberId: string;
  lat: number;
  lon: number;
  accuracyM: number;
  at: Date;
}

export interface CheckinResult {
  /** Null when the check-in was not kept (no location consent). */
  checkinId: string | null;
  decision: Decision;
  deliveryId: string | null;
}

interface DecisionRow {
  id: string;
  member_id: string;
  trigger: 'checkin';
  checkin_id: string | null;
  occurred_at: Date;
  outcome: Outcome;
  reason_code: string | null;
  campaign_id: string | null;
  campaign_version: number | null;
  trace: DecisionTrace;
  created_at: Date;
}

export const toDecision = (r: DecisionRow): Decision => ({
  id: r.id,
  memberId: r.member_id,
  trigger: r.trigger,
  checkinId: r.checkin_id,
  occurredAt: r.occurred_at.toISOString(),
  outcome: r.outcome,
  reasonCode: r.reason_code,
  campaignId: r.campaign_id,
  campaignVersion: r.campaign_version,
  trace: r.trace,
  createdAt: r.created_at.toISOString(),
});

async function insertDecision(
  db: Sql,
  d: { memberId: string; checkinId: string | null; at: Date; outcome: Outcome; reasonCode: string | null; campaignId?: string; campaignVersion?: number; trace: DecisionTrace },
): Promise<Decision> {
  const [row] = await db.query<DecisionRow>(
    `INSERT INTO decisions (member_id, trigger, checkin_id, occurred_at, outcome, reason_code, campaign_id, campaign_version, trace)
     VALUES ($1, 'checkin', $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
    [d.memberId, d.checkinId, d.at, d.outcome, d.reasonCode, d.campaignId ?? null, d.campaignVersion ?? null, d.trace],
  );
  return toDecision(row!);
}

async function insertCheckin(db: Sql, c: CheckinInput): Promise<string> {
  const [row] = await db.query<{ id: string }>(
    'INSERT INTO checkins (member_id, lat, lon, accuracy_m, occurred_at) VALUES ($1, $2, $3, $4, $5) RETURNING id',
    [c.memberId, c.lat, c.lon, c.accuracyM, c.at],
  );
  return row!.id;
}

export async function handleCheckin(deps: Deps, input: CheckinInput): Promise<CheckinResult> {
  const { db } = deps;
  const now = deps.now();
  const member = await getMember(db, input.memberId);
  const consent = await currentConsent(db, member.id);

  // Without location consent the position is never stored; only the decision not to use it is.
  const location = checkConsent(consent, ['location']);
  if (!location.allowed) {
    const decision = await insertDecision(db, {
      memberId: member.id, checkinId: null, at: input.at, outcome: 'dropped', reasonCode: location.reason,
      trace: { consent: { location }, note: 'check-in discarded unstored: location consent is not granted' },
    });
    return { checkinId: null, decision, deliveryId: null };
  }

  const trace: DecisionTrace = { consent: { location } };
  if (now.getTime() - input.at.getTime() > STALE_AFTER_MS) {
    const checkinId = await insertCheckin(db, input);
    const decision = await insertDecision(db, {
      memberId: member.id, checkinId, at: input.at, outcome: 'not_sent', reasonCode: 'STALE_EVENT',
      trace: { ...trace, note: `fix is older than ${STALE_AFTER_MS / 60_000} minutes at evaluation` },
    });
    return { checkinId, decision, deliveryId: null };
  }

  const { campaigns } = await activeCampaigns(db);
  const event: PresenceEvent = { kind: 'checkin', position: { lat: input.lat, lon: input.lon }, accuracyM: input.accuracyM, at: input.at };
  trace.evaluation = evaluate(campaigns, event, now);
  const chosen = trace.evaluation.chosen;
  const campaign = chosen && campaigns.find((c) => c.id === chosen.campaignId);

  if (!chosen || !campaign) {
    const checkinId = await insertCheckin(db, input);
    const decision = await insertDecision(db, { memberId: member.id, checkinId, at: input.at, outcome: 'no_match', reasonCode: 'NO_CAMPAIGN_MATCHED', trace });
    return { checkinId, decision, deliveryId: null };
  }

  const sms = checkConsent(consent, ['sms_marketing']);
  trace.consent.sms_marketing = sms;
  const ref = { campaignId: campaign.id, campaignVersion: campaign.version };
  if (!sms.allowed || !member.phone) {
    const checkinId = await insertCheckin(db, input);
    const decision = await insertDecision(db, {
      memberId: member.id, checkinId, at: input.at, outcome: 'not_sent', reasonCode: sms.allowed ? 'NO_PHONE' : sms.reason, ...ref, trace,
    });
    return { checkinId, decision, deliveryId: null };
  }

  const { checkinId, decision, deliveryId } = await db.transaction(async (tx) => {
    const checkinId = await insertCheckin(tx, input);
    const decision = await insertDecision(tx, { memberId: member.id, checkinId, at: input.at, outcome: 'offer_queued', reasonCode: null, ...ref, trace });
    const expiresAt = new Date(now.getTime() + campaign.offer.validDays * 86_400_000);
    const code = await issueCoupon(tx, { offerId: campaign.offer.id, campaignId: campaign.id, memberId: member.id, decisionId: decision.id, now, expiresAt });
    const body = composeSms(deps.config.programName, campaign.offer.message, code, expiresAt, member.timeZone);
    const [delivery] = await tx.query<{ id: string }>(
      `INSERT INTO deliveries (decision_id, coupon_id, member_id, channel, body, status)
       VALUES ($1, (SELECT id FROM coupons WHERE decision_id = $1), $2, 'sms', $3, 'queued') RETURNING id`,
      [decision.id, member.id, body],
    );
    return { checkinId, decision, deliveryId: delivery!.id };
  });
  // After commit: a failed enqueue leaves the delivery 'queued', and the worker's start-up sweep picks it up.
  await deps.queue.enqueue('sms.send', { deliveryId }, { jobId: deliveryId }).catch(() => {});
  return { checkinId, decision, deliveryId };
}

async function issueCoupon(
  tx: Sql,
  c: { offerId: string; campaignId: string; memberId: string; decisionId: string; now: Date; expiresAt: Date },
): Promise<string> {
  // A collision in 2^50 codes is near impossible; ON CONFLICT makes it a retry, not an error.
  for (;;) {
    const code = newCouponCode();
    const rows = await tx.query(
      `INSERT INTO coupons (code, offer_id, campaign_id, member_id, decision_id, issued_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (code) DO NOTHING RETURNING id`,
      [code, c.offerId, c.campaignId, c.memberId, c.decisionId, c.now, c.expiresAt],
    );
    if (rows.length === 1) return code;
  }
}
