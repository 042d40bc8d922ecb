/**
 * Glossary
 * - member: a person who joined the programme; the only people the system keeps anything about.
 * - purpose: one thing consent is given for. Each is granted and withdrawn on its own, never bundled.
 * - consent event: one grant or withdrawal, with its evidence. Events are appended, never changed.
 * - consent state: for each purpose, the last event decides; no event means not granted.
 */
export const PURPOSES = ['ble_detection', 'location', 'sms_marketing', 'push_marketing', 'partner_offers', 'profiling'] as const;
export type Purpose = (typeof PURPOSES)[number];

export const CONSENT_SOURCES = ['app', 'web', 'sms_keyword', 'store_staff', 'api'] as const;
export type ConsentSource = (typeof CONSENT_SOURCES)[number];

export type ConsentAction = 'grant' | 'withdraw';
