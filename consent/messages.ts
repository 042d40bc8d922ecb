// The texts of the SMS programme (CTIA Messaging Principles): every one names the programme and how to leave.
// Plain ASCII only, so each stays in the GSM-7 alphabet; fitting 320 characters depends on the ProgramInfo given.
import { formatLocal } from './clock.js';
import type { ConsentAction, Purpose } from './purposes.js';

export interface ProgramInfo {
  /** As the member knows it: "Harbor Mall Rewards". */
  name: string;
  /** A phone number, e-mail or URL where a person answers. */
  helpContact: string;
  /** "Up to 3 msgs/week". */
  frequency: string;
}

export interface ConsentChange {
  purpose: Purpose;
  action: ConsentAction;
  at: Date;
  /** The member's zone: a receipt states the time on their clock. */
  timeZone: string;
}

const RATES = 'Msg & data rates may apply.';
const HELP = 'Reply HELP for help.';
const STOP = 'Reply STOP to cancel.';

const PURPOSE_LABEL: Readonly<Record<Purpose, string>> = {
  ble_detection: 'in-store beacon detection',
  location: 'use of your location',
  sms_marketing: 'marketing texts',
  push_marketing: 'marketing push notifications',
  partner_offers: 'offers from our partners',
  profiling: 'offers based on your activity',
};

const sentence = (s: string) => `${s.trim().replace(/[.!]+$/, '')}.`;

/** Double opt-in, step one: nothing is sent to the member's phone until they answer YES. */
export function optInConfirmationRequest(p: ProgramInfo): string {
  return `${p.name}: Reply YES to confirm you want marketing texts. ${sentence(p.frequency)} ${RATES} Reply HELP for help or contact ${p.helpContact}. ${STOP}`;
}

export function optInConfirmed(p: ProgramInfo): string {
  return `${p.name}: You are subscribed to marketing texts. ${sentence(p.frequency)} ${RATES} ${HELP} ${STOP}`;
}

/** The one message allowed after STOP: a confirmation with no marketing in it. */
export function optOutConfirmation(p: ProgramInfo): string {
  return `${p.name}: You are unsubscribed and will receive no more messages. Reply START to re-join.`;
}

export function helpText(p: ProgramInfo): string {
  return `${p.name} marketing texts. Help: ${p.helpContact}. ${sentence(p.frequency)} ${RATES} ${STOP}`;
}

/** What changed, when on the member's clock, and how to change it again. */
export function consentReceipt(change: ConsentChange, p: ProgramInfo): string {
  const what = PURPOSE_LABEL[change.purpose];
  const when = formatLocal(change.at, change.timeZone);
  return `${p.name}: ${receiptLine(change.action, what, when)} ${howToChange(change, p)}`;
}

function receiptLine(action: ConsentAction, what: string, when: string): string {
  switch (action) {
    case 'grant':
      return `You agreed to ${what} on ${when}.`;
    case 'withdraw':
      return `You withdrew consent to ${what} on ${when}.`;
    case 'request':
      return `On ${when} you asked for ${what}; nothing starts until you confirm.`;
    default: {
      const never: never = action;
      throw new Error(`Unknown consent action ${String(never)}`);
    }
  }
}

// SMS consent is changed by keyword from the phone itself; other purposes where the member manages their account.
function howToChange(change: ConsentChange, p: ProgramInfo): string {
  if (change.purpose !== 'sms_marketing') return `Change it anytime in your account or via ${p.helpContact}.`;
  switch (change.action) {
    case 'grant':
      return `${STOP} ${HELP}`;
    case 'withdraw':
      return `Reply START to re-join. ${HELP}`;
    case 'request':
      return `Reply YES to confirm. ${STOP}`;
    default: {
      const never: never = change.action;
      throw new Error(`Unknown consent action ${String(never)}`);
    }
  }
}
