// What a signed Twilio webhook may carry. The signature alone is not enough: Twilio signs the URL followed by
// each sorted parameter's name and value with no separator, so one signature also covers other splits of the
// same string (MessageSid=SMx&MessagingServiceSid=MGy signs exactly as MessageSid=SMxMessagingServiceSidMGy).
// A body that passes the signature is believed only if every parameter has the shape Twilio gives it.
import { invalid, type Issue } from '../errors.js';
import { CONTROL_IN_TEXT } from '../http/validation.js';

/** A parsed form body: a repeated key becomes an array (and is refused here). */
export type FormParams = Record<string, string | string[]>;

/** The statuses of Twilio's Message resource (its documented list), on status callbacks and inbound messages. */
export const TWILIO_MESSAGE_STATUSES: ReadonlySet<string> = new Set([
  'queued', 'sending', 'sent', 'failed', 'delivered', 'undelivered', 'receiving', 'received', 'accepted',
  'scheduled', 'read', 'partially_delivered', 'canceled',
]);

const MESSAGE_SID = /^(SM|MM)[0-9a-f]{32}$/;
const SERVICE_SID = /^MG[0-9a-f]{32}$/;
// A member's number is E.164; the programme's own may also be a short code (SMS_SENDER_TYPE=short_code).
const NUMBER = /^(\+[1-9]\d{1,14}|\d{3,8})$/;
const ERROR_CODE = /^\d{1,6}$/;
// C0 controls and DEL, except tab, line feed and carriage return, which a member's text may hold: free text's rule.
const CONTROL = CONTROL_IN_TEXT;
const CONTROLS = new RegExp(CONTROL_IN_TEXT.source, 'g');

type Check = (value: string) => string | null;
const matches = (pattern: RegExp, what: string): Check => (v) => (pattern.test(v) ? null : `must be ${what}`);

/** The parameters we read or that a forger could fold into them; others are only checked for control characters. */
function shapes(accountSid: string): Record<string, Check> {
  const sid = matches(MESSAGE_SID, 'a message sid (SM or MM and 32 lower-case hex digits)');
  const status: Check = (v) => (TWILIO_MESSAGE_STATUSES.has(v) ? null : "must be one of Twilio's message statuses");
  return {
    MessageSid: sid, SmsSid: sid, SmsMessageSid: sid,
    AccountSid: (v) => (v === accountSid ? null : 'must be our Twilio account'),
    MessagingServiceSid: matches(SERVICE_SID, 'a messaging service sid'),
    From: matches(NUMBER, 'a phone number (E.164) or a short code'), To: matches(NUMBER, 'a phone number (E.164) or a short code'),
    MessageStatus: status, SmsStatus: status,
    ErrorCode: matches(ERROR_CODE, 'a Twilio error code (digits)'),
  };
}

/**
 * The webhook's parameters as plain strings, once each has its shape and the `required` ones (with AccountSid,
 * which Twilio always sends) are present; otherwise 400 VALIDATION_FAILED naming each wrong field.
 */
export function checkWebhookParams<R extends string>(
  params: FormParams, accountSid: string, required: readonly R[],
): Record<R, string> & Partial<Record<string, string>> {
  const issues: Issue[] = [];
  const out: Record<string, string> = {};
  const shape = shapes(accountSid);
  for (const [name, value] of Object.entries(params)) {
    const field = `body/${name}`;
    if (typeof value !== 'string') {
      issues.push({ field, problem: 'is repeated; Twilio sends each parameter once' });
      continue;
    }
    // What the member typed is never refused (a STOP must not be lost): stray control characters are dropped from it.
    if (name === 'Body' && !CONTROL.test(name)) {
      out[name] = value.replace(CONTROLS, '');
      continue;
    }
    const problem = CONTROL.test(name) || CONTROL.test(value) ? 'holds a control character' : Object.hasOwn(shape, name) ? shape[name]!(value) : null;
    if (problem) issues.push({ field, problem });
    else out[name] = value;
  }
  for (const name of ['AccountSid', ...required]) {
    if (!Object.hasOwn(params, name)) issues.push({ field: `body/${name}`, problem: 'is required' });
  }
  if (issues.length > 0) throw invalid(...issues);
  return out as Record<R, string>;
}
