// Shared request and response shapes. Every object refuses fields it does not name.
import { Type, type TSchema } from 'typebox';
import { CONSENT_SOURCES, PURPOSES } from '../../consent/index.js';
import { FREE_TEXT } from './validation.js';

export const Strict = <T extends Record<string, TSchema>>(props: T, description?: string) =>
  Type.Object(props, { additionalProperties: false, ...(description ? { description } : {}) });

export const Uuid = Type.String({ format: 'uuid' });
/**
 * Text that may run over lines, such as an SMS's message: tabs and newlines are allowed. Every other string of a
 * request refuses every control character (validation.ts).
 */
export const FreeText = (options: { minLength?: number; maxLength: number; description?: string }) => Type.String({ ...options, [FREE_TEXT]: true });
export const IdParams = Strict({ id: Uuid });
export const Instant = Type.String({ format: 'date-time' });
export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const Lat = Type.Number({ minimum: -90, maximum: 90, description: 'WGS84 latitude in degrees' });
export const Lon = Type.Number({ minimum: -180, maximum: 180, description: 'WGS84 longitude in degrees' });
export const LatLon = Strict({ lat: Lat, lon: Lon });

export const TimeZone = Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone, e.g. Europe/Berlin' });
export const Phone = Type.String({ minLength: 1, maxLength: 20, description: 'E.164, e.g. +14155550123' });
export const Purpose = Type.Union(PURPOSES.map((p) => Type.Literal(p)));
export const ConsentSource = Type.Union(CONSENT_SOURCES.map((s) => Type.Literal(s)));

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'Stable error code, e.g. COUPON_ALREADY_REDEEMED' }),
    message: Type.String(),
    details: Type.Optional(Type.Object({}, { additionalProperties: true })),
  }),
});

/** Response entries for the errors a route can give; every route also documents 400, 401, 403, 429 and 500. */
export const errors = (...statuses: number[]) =>
  Object.fromEntries([400, 401, 403, 429, 500, ...statuses].map((s) => [s, ErrorBody])) as Record<number, typeof ErrorBody>;

export const PurposeState = Type.Object({
  granted: Type.Boolean(),
  since: Nullable(Instant),
  source: Nullable(Type.String()),
  /** An SMS opt-in was requested and awaits the member's YES. */
  pending: Type.Boolean(),
  requestedAt: Nullable(Instant),
});
export const ConsentState = Type.Object(Object.fromEntries(PURPOSES.map((p) => [p, PurposeState])));

/** Traces are free-form JSON written by the engine and the consent policy. */
export const AnyJson = Type.Unknown();

export const Decision = Type.Object({
  id: Uuid,
  memberId: Uuid,
  trigger: Type.String(),
  checkinId: Nullable(Uuid),
  occurredAt: Instant,
  outcome: Type.Union([Type.Literal('offer_queued'), Type.Literal('held_out'), Type.Literal('no_match'), Type.Literal('not_sent'), Type.Literal('dropped')]),
  reasonCode: Nullable(Type.String()),
  campaignId: Nullable(Uuid),
  campaignVersion: Nullable(Type.Integer()),
  trace: AnyJson,
  createdAt: Instant,
});
