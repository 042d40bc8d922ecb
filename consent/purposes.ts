/**
 * Glossary
 * - member: a person who joined the programme; the only people the system keeps anything about.
 * - purpose: one thing consent is given for. Each is granted and withdrawn on its own, never bundled.
 * - consent event: one grant, withdrawal or request, with its evidence. Events are appended, never changed.
 * - request: an opt-in that still waits for the member's confirmation (SMS double opt-in: "reply YES").
 *   It grants nothing; it only marks the purpose as pending.
 * - consent state: for each purpose, the last grant or withdrawal decides; no such event means not granted.
 * - quiet hours: the part of the member's own night during which nobody contacts them.
 */
export const PURPOSES = ['ble_detection', 'location', 'sms_marketing', 'push_marketing', 'partner_offers', 'profiling'] as const;
export type Purpose = (typeof PURPOSES)[number];

export const CONSENT_SOURCES = ['app', 'web', 'sms_keyword', 'store_staff', 'api'] as const;
export type ConsentSource = (typeof CONSENT_SOURCES)[number];

export const CONSENT_ACTIONS = ['grant', 'withdraw', 'request'] as const;
export type ConsentAction = (typeof CONSENT_ACTIONS)[number];

/**
 * Double opt-in applies to SMS only: carriers (CTIA) expect a texted "reply YES" before marketing texts,
 * while the app and web forms record an explicit grant directly.
 */
export function needsConfirmation(purpose: Purpose): boolean {
  return purpose === 'sms_marketing';
}
