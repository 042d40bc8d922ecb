// One decision: a presence event evaluated against the active campaigns for one member, recorded with its
// trace, and, when an offer wins, a coupon and a queued delivery, all in the caller's transaction.
import {
  evaluate, type CandidateTrace, type Channel, type Evaluation, type MemberContext, type PreparedCampaigns, type PresenceEvent,
} from '../../campaign-rules/index.js';
import type { ConsentCheck, ConsentState } from '../../consent/index.js';
import { CHANNEL_PURPOSE, checkConsent, isQuiet, nextAllowed } from '../../consent/index.js';
import type { Sql } from '../db/database.js';
import { allianceCandidates, reserveOffer, type Candidates, type Reserved } from './alliance.js';
import { newCouponCode } from './coupons.js';
import { COUNTRY_NOT_ALLOWED, mayText } from '../sms/countries.js';
import type { Deps } from './deps.js';
import { composeSms } from './messages.js';
import type { Member } from './members.js';
import { composePush } from '../push/payload.js';
import { hasPushSubscription } from './push-subscriptions.js';
import { memberRfm } from './rfm.js';

export type Outcome = 'offer_queued' | 'held_out' | 'no_match' | 'not_sent' | 'dropped';

export interface DecisionTrace {
  consent: Partial<Record<'location' | 'ble_detection' | 'sms_marketing' | 'push_marketing' | 'partner_offers', ConsentCheck>>;
  event?: Record<string, unknown>;
  /** Candidates listening to other triggers, or more than FAR_M away, are counted, not listed. */
  evaluation?: Omit<Evaluation, 'candidates'> & { candidates: CandidateTrace[]; otherTriggers: number; farAway: number };
  /** An alliance campaign won: the partner offers it could hand out, nearest first, and the one it did. */
  alliance?: {
    near: 'store' | 'member';
    withinM: number;
    from: Candidates['from'];
    origin: Candidates['origin'];
    candidates: Candidates['offers'];
    chosen?: { offerId: string; partnerId: string; storeId: string; distanceM: number };
  };
  note?: string;
}

export interface Decision {
  id: string;
  memberId: string;
  trigger: string;
  checkinId: string | null;
  occurredAt: string;
  outcome: Outcome;
  reasonCode: string | null;
  campaignId: string | null;
  campaignVersion: number | null;
  trace: DecisionTrace;
  createdAt: string;
}

export interface DecisionRow {
  id: string;
  member_id: string;
  trigger: string;
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

export async function insertDecision(
  db: Sql,
  d: {
    memberId: string; trigger: string; checkinId: string | null; at: Date; outcome: Outcome; reasonCode: string | null;
    campaignId?: string; campaignVersion?: number; trace: DecisionTrace;
  },
): Promise<Decision> {
  const [row] = await db.query<DecisionRow>(
    `INSERT INTO decisions (member_id, trigger, checkin_id, occurred_at, outcome, reason_code, campaign_id, campaign_version, trace)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
    [d.memberId, d.trigger, d.checkinId, d.at, d.outcome, d.reasonCode, d.campaignId ?? null, d.campaignVersion ?? null, d.trace],
  );
  return toDecision(row!);
}

const RFM_CONDITIONS = ['rfmSegments', 'valueTiers', 'minRecencyScore', 'minFrequencyScore', 'minMonetaryScore'] as const;

/**
 * What the engine needs to know of the member, read inside the decision's transaction. The RFM profile (an
 * aggregate over the member's redemptions) and the push devices are read only when one of the campaigns can use them.
 */
export async function memberContext(
  db: Sql, member: Member, consent: ConsentState, before: Date, prepared: PreparedCampaigns, smsCountries: readonly string[],
): Promise<MemberContext> {
  const withRfm = prepared.campaigns.some((c) => RFM_CONDITIONS.some((k) => c.audience[k] !== undefined));
  const withPush = prepared.campaigns.some((c) => c.channels.includes('push'));
  const [facts] = await db.query<{ tier: string | null; tags: string[]; home_store_id: string | null }>(
    'SELECT tier, tags, home_store_id FROM members WHERE id = $1',
    [member.id],
  );
  const [visits] = await db.query<{ n: number; last: Date | null }>(
    'SELECT count(*)::int AS n, max(coalesce(ended_at, started_at)) AS last FROM visits WHERE member_id = $1 AND started_at < $2',
    [member.id, before],
  );
  const offers = await db.query<{ campaign_id: string; issued_at: Date }>(
    'SELECT campaign_id, issued_at FROM coupons WHERE member_id = $1 ORDER BY issued_at DESC',
    [member.id],
  );
  const redemptions = await db.query<{ campaign_id: string; redeemed_at: Date }>(
    `SELECT c.campaign_id, r.redeemed_at FROM live_redemptions r JOIN coupons c ON c.id = r.coupon_id
      WHERE c.member_id = $1 ORDER BY r.redeemed_at DESC`,
    [member.id],
  );
  // SMS needs the consent and a number the gateway may text (SMS_COUNTRIES).
  const textable = member.phone !== null && mayText(smsCountries, member.phone);
  const channels: Channel[] = textable && checkConsent(consent, ['sms_marketing']).allowed ? ['sms'] : [];
  // Push needs its own consent and at least one of the member's devices subscribed.
  if (withPush && checkConsent(consent, ['push_marketing']).allowed && (await hasPushSubscription(db, member.id, before))) channels.push('push');
  return {
    id: member.id,
    tier: facts?.tier ?? null,
    tags: facts?.tags ?? [],
    visitCount: visits?.n ?? 0,
    lastVisitAt: visits?.last ?? null,
    lifetimeRedemptions: redemptions.length,
    homeStoreId: facts?.home_store_id ?? null,
    channels,
    offers: offers.map((o) => ({ campaignId: o.campaign_id, at: o.issued_at })),
    redemptions: redemptions.map((r) => ({ campaignId: r.campaign_id, at: r.redeemed_at })),
    // RFM audience conditions: read only with profiling consent; otherwise the reason a condition cannot match.
    ...(withRfm ? { rfm: await memberRfm(db, member.id, consent, before) } : {}),
  };
}

async function campaignCounters(db: Sql, prepared: PreparedCampaigns) {
  const ids = prepared.campaigns.filter((c) => c.budget.maxCoupons !== undefined || c.budget.maxRedemptions !== undefined).map((c) => c.id);
  if (ids.length === 0) return new Map();
  const rows = await db.query<{ campaign_id: string; issued: number; redeemed: number }>(
    `SELECT c.campaign_id, count(*)::int AS issued, count(r.id)::int AS redeemed
       FROM coupons c LEFT JOIN live_redemptions r ON r.coupon_id = c.id WHERE c.campaign_id = ANY($1::uuid[]) GROUP BY c.campaign_id`,
    [ids],
  );
  return new Map(rows.map((r) => [r.campaign_id, { couponsIssued: r.issued, redemptions: r.redeemed }]));
}

/** Beyond this a campaign's place is not what the member was near; its trace would only be noise. */
const FAR_M = 1_000;
const isFar = (c: CandidateTrace) =>
  c.failed?.condition === 'outside_geofences' && (c.failed.nearest === null || c.failed.nearest.distanceM > FAR_M);

// Conditions in the order the engine checks them: the candidate that got furthest best explains a no.
const ORDER = [
  'trigger', 'status', 'not_started', 'ended', 'schedule', 'source', 'confidence', 'accuracy', 'outside_geofences', 'geofence', 'zone',
  'dwell', 'pass_by', 'closed', 'audience', 'channel', 'member_cap', 'cooldown', 'contact_limit', 'budget',
];

function whyNot(candidates: CandidateTrace[], consent: ConsentState, member: Member, smsCountries: readonly string[]): { outcome: Outcome; reason: string } {
  let furthest = -1;
  for (const c of candidates) furthest = Math.max(furthest, ORDER.indexOf(c.failed?.condition ?? ''));
  const condition = ORDER[furthest];
  if (condition === 'channel') {
    // None of the campaign's channels is open to the member: the reason is its first choice's.
    const failed = candidates.find((c) => c.failed?.condition === 'channel')?.failed;
    for (const channel of failed?.condition === 'channel' ? failed.allowed : []) {
      const open = checkConsent(consent, [CHANNEL_PURPOSE[channel]]);
      if (!open.allowed) return { outcome: 'not_sent', reason: open.reason };
      if (channel === 'sms' && !member.phone) return { outcome: 'not_sent', reason: 'NO_PHONE' };
      if (channel === 'sms' && !mayText(smsCountries, member.phone!)) return { outcome: 'not_sent', reason: COUNTRY_NOT_ALLOWED };
      if (channel === 'push') return { outcome: 'not_sent', reason: 'NO_PUSH_SUBSCRIPTION' };
    }
  }
  if (condition === undefined || condition === 'trigger') return { outcome: 'no_match', reason: 'NO_CAMPAIGN_MATCHED' };
  return { outcome: 'no_match', reason: condition === 'budget' ? 'BUDGET_EXHAUSTED' : condition.toUpperCase() };
}

export interface Decided {
  decision: Decision;
  deliveryId: string | null;
}

/**
 * Evaluates and records one event. Must run in a transaction that holds the member's row lock, so that two
 * check-ins of one member never both pass a cap; the campaign's row is locked too when its budget is checked.
 */
export async function decide(
  deps: Deps,
  tx: Sql,
  input: { member: Member; consent: ConsentState; context: MemberContext; prepared: PreparedCampaigns; event: PresenceEvent; checkinId: string | null },
  now: Date,
): Promise<Decided> {
  const { member, consent, context, prepared, event } = input;
  const counters = await campaignCounters(tx, prepared);
  const evaluation = evaluate(prepared, { member: context, event, counters }, now);
  const otherTriggers = evaluation.candidates.filter((c) => c.failed?.condition === 'trigger').length;
  const isRelevant = (c: CandidateTrace) => c.failed?.condition !== 'trigger' && !isFar(c);
  const relevant = evaluation.candidates.filter(isRelevant);
  // Candidates are in the campaigns' order.
  const pushConsidered = prepared.campaigns.some((c, i) => c.channels.includes('push') && isRelevant(evaluation.candidates[i]!));
  const trace: DecisionTrace = {
    consent: {
      // The presence data this decision used, and the channel it would use.
      ...(event.source === 'gps' ? { location: checkConsent(consent, ['location']) } : { ble_detection: checkConsent(consent, ['ble_detection']) }),
      sms_marketing: checkConsent(consent, ['sms_marketing']),
      ...(pushConsidered ? { push_marketing: checkConsent(consent, ['push_marketing']) } : {}),
    },
    event: { ...event, at: event.at.toISOString() },
    evaluation: { ...evaluation, candidates: relevant, otherTriggers, farAway: evaluation.candidates.length - otherTriggers - relevant.length },
  };
  const base = { memberId: member.id, trigger: event.kind, checkinId: input.checkinId, at: event.at, trace };
  const chosen = evaluation.chosen;
  if (!chosen) {
    const { outcome, reason } = whyNot(evaluation.candidates, consent, member, deps.config.smsCountries);
    return { decision: await insertDecision(tx, { ...base, outcome, reasonCode: reason }), deliveryId: null };
  }
  const campaign = prepared.campaigns.find((c) => c.id === chosen.campaignId)!;
  const ref = { campaignId: campaign.id, campaignVersion: campaign.version };
  // A partner's offer goes only to members who agreed to partners' offers: without that the member could never be
  // treated, so is not a control either.
  if (campaign.alliance) {
    const partner = checkConsent(consent, ['partner_offers']);
    trace.consent.partner_offers = partner;
    if (!partner.allowed) {
      trace.note = `the campaign sends a partner's offer and partner_offers consent is ${partner.reason === 'CONSENT_WITHDRAWN' ? 'withdrawn' : 'not granted'}`;
      return { decision: await insertDecision(tx, { ...base, ...ref, outcome: 'not_sent', reasonCode: 'PARTNER_CONSENT_REQUIRED' }), deliveryId: null };
    }
  }
  // In the member's quiet hours nobody is treated, so the control group below stays comparable.
  if (isQuiet(now, member.timeZone)) {
    const next = nextAllowed(now, member.timeZone);
    trace.note = `quiet hours in ${member.timeZone} until ${next?.toISOString() ?? 'never'}`;
    return { decision: await insertDecision(tx, { ...base, ...ref, outcome: 'not_sent', reasonCode: 'QUIET_HOURS' }), deliveryId: null };
  }
  // Likewise with no partner offer to hand out: nobody could be treated.
  let candidates: Candidates | null = null;
  if (campaign.alliance) {
    candidates = await allianceCandidates(tx, campaign.alliance, event, now);
    trace.alliance = {
      near: campaign.alliance.near, withinM: campaign.alliance.withinM, from: candidates.from, origin: candidates.origin, candidates: candidates.offers,
    };
    if (candidates.offers.length === 0) {
      trace.note = candidates.origin
        ? `none of the campaign's partner offers is published, valid, within budget and redeemable within ${campaign.alliance.withinM} m`
        : 'the member\'s position at the event is unknown, so no partner offer can be measured from it';
      return { decision: await insertDecision(tx, { ...base, ...ref, outcome: 'not_sent', reasonCode: 'ALLIANCE_OFFER_UNAVAILABLE' }), deliveryId: null };
    }
  }
  if (chosen.heldOut) {
    return { decision: await insertDecision(tx, { ...base, ...ref, outcome: 'held_out', reasonCode: 'HOLDOUT' }), deliveryId: null };
  }
  if (campaign.budget.maxCoupons !== undefined) {
    // Re-count under the campaign's lock: concurrent decisions on other members cannot overrun the budget.
    await tx.query('SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE', [campaign.id]);
    const [{ n }] = (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM coupons WHERE campaign_id = $1', [campaign.id])) as [{ n: number }];
    if (n >= campaign.budget.maxCoupons) {
      return { decision: await insertDecision(tx, { ...base, ...ref, outcome: 'not_sent', reasonCode: 'BUDGET_EXHAUSTED' }), deliveryId: null };
    }
  }
  let partnerOffer: Reserved | null = null;
  if (candidates && trace.alliance) {
    // Nearest first; one that ran out or was withdrawn since the read above gives way to the next.
    for (const c of candidates.offers) {
      partnerOffer = await reserveOffer(tx, c.offerId, now);
      if (partnerOffer) {
        trace.alliance.chosen = { offerId: c.offerId, partnerId: partnerOffer.merchantId, storeId: c.storeId, distanceM: c.distanceM };
        break;
      }
    }
    if (!partnerOffer) {
      trace.note = "the campaign's partner offers ran out or were withdrawn while deciding";
      return { decision: await insertDecision(tx, { ...base, ...ref, outcome: 'not_sent', reasonCode: 'ALLIANCE_OFFER_UNAVAILABLE' }), deliveryId: null };
    }
  }
  const decision = await insertDecision(tx, { ...base, ...ref, outcome: 'offer_queued', reasonCode: null });
  const offer = partnerOffer ?? campaign.offer;
  let expiresAt = new Date(now.getTime() + offer.validDays * 86_400_000);
  if (partnerOffer && partnerOffer.validTo < expiresAt) expiresAt = partnerOffer.validTo;
  const code = await issueCoupon(tx, {
    offerId: campaign.offer.id, campaignId: campaign.id, memberId: member.id, decisionId: decision.id, now, expiresAt, allianceOfferId: partnerOffer?.id ?? null,
  });
  const body = chosen.channel === 'push'
    ? composePush(offer.title, offer.message, code, expiresAt, member.timeZone)
    : composeSms(deps.config.programName, offer.message, code, expiresAt, member.timeZone);
  const [delivery] = await tx.query<{ id: string }>(
    // created_at on the gateway's clock: the worker measures the offer's age against that same clock.
    // fresh_until: the freshness budget runs from the detection or fix that triggered the offer.
    `INSERT INTO deliveries (decision_id, coupon_id, member_id, channel, body, status, created_at, updated_at, fresh_until)
     VALUES ($1, (SELECT id FROM coupons WHERE decision_id = $1), $2, $3, $4, 'queued', $5, $5, $6) RETURNING id`,
    [decision.id, member.id, chosen.channel, body, now, new Date(Math.min(now.getTime(), event.at.getTime()) + deps.config.offerFreshnessS * 1000)],
  );
  // Later events of the same fix see this offer, so caps and contact limits hold within one request too.
  context.offers.unshift({ campaignId: campaign.id, at: now });
  return { decision, deliveryId: delivery!.id };
}

async function issueCoupon(
  tx: Sql,
  c: { offerId: string; campaignId: string; memberId: string; decisionId: string; now: Date; expiresAt: Date; allianceOfferId: string | null },
): Promise<string> {
  // A collision in 2^50 codes is near impossible; ON CONFLICT makes it a retry, not an error.
  for (;;) {
    const code = newCouponCode();
    const rows = await tx.query(
      `INSERT INTO coupons (code, offer_id, campaign_id, member_id, decision_id, issued_at, expires_at, alliance_offer_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code) DO NOTHING RETURNING id`,
      [code, c.offerId, c.campaignId, c.memberId, c.decisionId, c.now, c.expiresAt, c.allianceOfferId],
    );
    if (rows.length === 1) return code;
  }
}
