// Consent policy: pure functions over a member's ledger events. No I/O, no clock (time is an argument);
// the gateway holds the adapters.
export { PURPOSES, CONSENT_SOURCES, CONSENT_ACTIONS, needsConfirmation, type Purpose, type ConsentSource, type ConsentAction } from './purposes.js';
export { consentState, checkConsent, type ConsentEvent, type ConsentState, type PurposeState, type ConsentCheck } from './state.js';
export { parseSmsKeyword, SMS_KEYWORDS, type SmsKeyword, type SmsKeywordKind } from './keywords.js';
export {
  optInConfirmationRequest, optInConfirmed, optOutConfirmation, helpText, consentReceipt, type ProgramInfo, type ConsentChange,
} from './messages.js';
export { DEFAULT_QUIET_HOURS, isQuiet, nextAllowed, stricter, validQuietHours, type QuietHours } from './quiet-hours.js';
export {
  mayContact, CHANNEL_PURPOSE, DEFAULT_CONTACT_LIMITS, type Channel, type ContactLimit, type ContactInput, type ContactDecision,
} from './policy.js';
