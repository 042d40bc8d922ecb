// The marketer's campaign, as sent and as returned. Shape and ranges live here; meaning (time zones, windows,
// geometry) is checked by campaign-rules/validate.ts.
import { Type, type Static } from 'typebox';
import { RFM_SEGMENTS, VALUE_TIERS } from '../../campaign-rules/index.js';
import { FreeText, Instant, Nullable, Strict, Uuid } from './schemas.js';

const Weekday = Type.Union([
  Type.Literal('mon'), Type.Literal('tue'), Type.Literal('wed'), Type.Literal('thu'), Type.Literal('fri'), Type.Literal('sat'), Type.Literal('sun'),
]);
export const WeeklyWindow = Strict({
  days: Type.Array(Weekday, { maxItems: 7 }),
  from: Type.String({ pattern: '^\\d{2}:\\d{2}$', description: 'HH:MM local time' }),
  to: Type.String({ pattern: '^\\d{2}:\\d{2}$', description: 'HH:MM local time; earlier than from runs past midnight' }),
});

const Minutes = Type.Integer({ minimum: 1, maximum: 24 * 60 });
const ZoneIds = Type.Array(Uuid, { maxItems: 100 });

export const Trigger = Type.Union([
  Strict({ kind: Type.Literal('checkin') }, 'A GPS check-in inside one of the geofences'),
  Strict({ kind: Type.Literal('geofence_enter') }),
  Strict({ kind: Type.Literal('geofence_exit') }),
  Strict({ kind: Type.Literal('geofence_dwell'), minutes: Minutes }),
  Strict({ kind: Type.Literal('pass_by'), withinMinutes: Minutes }, 'Entered and left within N minutes without dwelling'),
  Strict({ kind: Type.Literal('zone_enter'), zoneIds: ZoneIds }),
  Strict({ kind: Type.Literal('zone_dwell'), zoneIds: ZoneIds, minutes: Minutes }),
]);

const Count = Type.Integer({ minimum: 1, maximum: 1_000_000_000 });
const Tags = Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { minItems: 1, maxItems: 50 });
const NonNegative = Type.Integer({ minimum: 0, maximum: 1_000_000 });
const RfmScore = Type.Integer({ minimum: 1, maximum: 5, description: 'RFM score 1..5; needs profiling consent' });

export const Audience = Strict({
  tiers: Type.Optional(Tags),
  tagsAny: Type.Optional(Tags),
  tagsAll: Type.Optional(Tags),
  minVisits: Type.Optional(NonNegative),
  maxVisits: Type.Optional(NonNegative),
  minDaysSinceLastVisit: Type.Optional(Type.Number({ minimum: 0, maximum: 36500 })),
  maxDaysSinceLastVisit: Type.Optional(Type.Number({ minimum: 0, maximum: 36500 })),
  minLifetimeRedemptions: Type.Optional(NonNegative),
  maxLifetimeRedemptions: Type.Optional(NonNegative),
  homeStoreIds: Type.Optional(Type.Array(Uuid, { minItems: 1, maxItems: 1000 })),
  // RFM conditions: match only members who grant `profiling` (campaign-rules/rfm.ts defines the scores).
  rfmSegments: Type.Optional(Type.Array(Type.Union(RFM_SEGMENTS.map((s) => Type.Literal(s))), { minItems: 1, maxItems: RFM_SEGMENTS.length })),
  valueTiers: Type.Optional(Type.Array(Type.Union(VALUE_TIERS.map((t) => Type.Literal(t))), { minItems: 1, maxItems: VALUE_TIERS.length })),
  minRecencyScore: Type.Optional(RfmScore),
  minFrequencyScore: Type.Optional(RfmScore),
  minMonetaryScore: Type.Optional(RfmScore),
});

/** A brand's campaign that hands out a partner's alliance offer instead of its own coupon. */
export const Alliance = Strict({
  offerIds: Type.Array(Uuid, { minItems: 1, maxItems: 50, description: 'Published alliance offers (GET /alliance-offers), in order of preference' }),
  near: Type.Union([Type.Literal('store'), Type.Literal('member')], {
    description: "Measure from the campaign's store (the campaign needs a storeId) or from where the member is at the triggering event",
  }),
  withinM: Type.Number({ exclusiveMinimum: 0, maximum: 100_000, description: 'The offer needs a redeemable store this close (metres); the nearest wins' }),
}, "Send a partner's offer: the member needs partner_offers consent. The campaign's own offer stays its name for it in the brand's records");

const Source = Type.Union([Type.Literal('gps'), Type.Literal('ble_zone'), Type.Literal('app_beacon')]);
const Channel = Type.Union([Type.Literal('sms'), Type.Literal('push')]);

export const CampaignInput = Strict({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  storeId: Type.Optional(Uuid),
  geofenceIds: Type.Optional(Type.Array(Uuid, { minItems: 1, maxItems: 1000 })),
  priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000, default: 0 })),
  expectedValue: Type.Optional(Type.Number({ minimum: 0, maximum: 1e9, description: 'Expected value of one send; breaks priority ties' })),
  schedule: Type.Optional(
    Strict({
      timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "IANA zone; defaults to the store's" })),
      startsAt: Type.Optional(Instant),
      endsAt: Type.Optional(Instant),
      weekly: Type.Optional(Type.Array(WeeklyWindow, { maxItems: 50 })),
    }),
  ),
  trigger: Trigger,
  sources: Type.Optional(Type.Array(Source, { minItems: 1, maxItems: 3 })),
  minConfidence: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  maxAccuracyM: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10_000, description: 'Default 50 m' })),
  audience: Type.Optional(Audience),
  channels: Type.Optional(Type.Array(Channel, {
    minItems: 1, maxItems: 2, description: 'In order of preference, default ["sms"]; ["push", "sms"] pushes where the member can get it, else texts',
  })),
  caps: Type.Optional(
    Strict({
      perDay: Type.Optional(Count),
      perWeek: Type.Optional(Count),
      lifetime: Type.Optional(Count),
      cooldownAfterRedemptionHours: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 24 * 365 })),
    }),
  ),
  budget: Type.Optional(Strict({ maxCoupons: Type.Optional(Count), maxRedemptions: Type.Optional(Count) })),
  holdoutPercent: Type.Optional(Type.Number({ minimum: 0, maximum: 50, description: 'Share of eligible members kept as control' })),
  offer: Strict({
    title: Type.String({ minLength: 1, maxLength: 100 }),
    message: FreeText({
      minLength: 1,
      maxLength: 300,
      description: 'SMS text; {code} and {expires} are filled in. The programme name and opt-out line are added.',
    }),
    validDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 })),
  }),
  alliance: Type.Optional(Alliance),
});
export type CampaignInput = Static<typeof CampaignInput>;

export const CampaignDefinition = Type.Object({
  storeId: Nullable(Uuid),
  geofenceIds: Type.Array(Uuid),
  priority: Type.Integer(),
  expectedValue: Type.Number(),
  schedule: Type.Object({
    timeZone: Type.String(),
    startsAt: Nullable(Instant),
    endsAt: Nullable(Instant),
    weekly: Nullable(Type.Array(WeeklyWindow)),
  }),
  trigger: Trigger,
  sources: Type.Array(Source),
  minConfidence: Type.Number(),
  maxAccuracyM: Type.Number(),
  audience: Audience,
  channels: Type.Array(Channel),
  caps: Type.Object({
    perDay: Type.Optional(Type.Integer()),
    perWeek: Type.Optional(Type.Integer()),
    lifetime: Type.Optional(Type.Integer()),
    cooldownAfterRedemptionHours: Type.Optional(Type.Number()),
  }),
  budget: Type.Object({ maxCoupons: Type.Optional(Type.Integer()), maxRedemptions: Type.Optional(Type.Integer()) }),
  holdoutPercent: Type.Number(),
  alliance: Type.Optional(Alliance),
});
export type CampaignDefinition = Static<typeof CampaignDefinition>;

const OfferView = Type.Object({ id: Uuid, kind: Type.String(), title: Type.String(), message: Type.String(), validDays: Type.Integer() });

export const CampaignView = Type.Object({
  id: Uuid,
  merchantId: Type.String({ format: 'uuid', description: 'The brand that runs it' }),
  name: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('paused'), Type.Literal('archived')]),
  version: Type.Integer(),
  definition: CampaignDefinition,
  offer: OfferView,
  createdAt: Instant,
  updatedAt: Instant,
});
export type CampaignView = Static<typeof CampaignView>;

export const CampaignVersionView = Type.Object({ version: Type.Integer(), name: Type.String(), definition: CampaignDefinition, offer: OfferView, createdAt: Instant });
