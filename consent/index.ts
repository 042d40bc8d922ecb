// Consent policy: pure functions over a member's ledger events. No I/O; the gateway holds the adapters.
export { PURPOSES, CONSENT_SOURCES, type Purpose, type ConsentSource, type ConsentAction } from './purposes.js';
export { consentState, checkConsent, type ConsentEvent, type ConsentState, type PurposeState, type ConsentCheck } from './state.js';
