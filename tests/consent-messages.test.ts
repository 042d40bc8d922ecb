import { describe, expect, it } from 'vitest';
import {
  PURPOSES, consentReceipt, helpText, optInConfirmationRequest, optInConfirmed, optOutConfirmation, type ConsentAction, type ProgramInfo,
} from '../consent/index.js';

const program: ProgramInfo = { name: 'Harbor Mall Rewards', helpContact: 'help@harbormall.example', frequency: 'Up to 3 msgs/week' };
// A long but plausible programme, to keep the 2-segment budget honest.
const longProgram: ProgramInfo = { name: 'Harbor Point Shopping Center VIP Rewards', helpContact: 'https://harborpoint.example/sms-help', frequency: 'Up to 3 msgs/week.' };
const actions: ConsentAction[] = ['grant', 'withdraw', 'request'];

const receipts = (p: ProgramInfo) =>
  PURPOSES.flatMap((purpose) => actions.map((action) => consentReceipt({ purpose, action, at: new Date('2026-06-03T13:30:00Z'), timeZone: 'Asia/Kolkata' }, p)));

describe('programme texts', () => {
  const texts = (p: ProgramInfo) => ({
    optInConfirmationRequest: optInConfirmationRequest(p),
    optInConfirmed: optInConfirmed(p),
    optOutConfirmation: optOutConfirmation(p),
    helpText: helpText(p),
  });

  it.each([
    ['optInConfirmationRequest', ['Harbor Mall Rewards', 'Reply YES', 'Up to 3 msgs/week.', 'Msg & data rates may apply', 'Reply STOP to cancel', 'Reply HELP for help', 'help@harbormall.example']],
    ['optInConfirmed', ['Harbor Mall Rewards', 'Up to 3 msgs/week.', 'Msg & data rates may apply', 'Reply STOP to cancel', 'Reply HELP for help']],
    ['optOutConfirmation', ['Harbor Mall Rewards', 'no more messages', 'Reply START']],
    ['helpText', ['Harbor Mall Rewards', 'help@harbormall.example', 'Up to 3 msgs/week.', 'Msg & data rates may apply', 'Reply STOP to cancel']],
  ] as const)('%s says %j', (name, needles) => {
    const text = texts(program)[name];
    for (const needle of needles) expect(text).toContain(needle);
  });

  it('the opt-out confirmation carries no marketing and offers nothing but START', () => {
    // The programme name is required; everything else is checked for selling words.
    const text = optOutConfirmation(program).replace(program.name, '');
    for (const word of ['offer', 'deal', 'discount', 'sale', 'coupon', 'free', 'save', 'reward', 'win', 'new', 'exclusive', '%', '$']) {
      expect(text.toLowerCase()).not.toContain(word);
    }
    expect(text).not.toMatch(/HELP|YES|rates/);
  });

  it.each([
    ['a typical programme', program],
    ['a long programme', longProgram],
  ] as const)('every text fits 2 SMS segments (320 characters) in plain ASCII, for %s', (_, p) => {
    for (const text of [...Object.values(texts(p)), ...receipts(p)]) {
      expect(text.length).toBeLessThanOrEqual(320);
      expect(text).toMatch(/^[\x20-\x7E]+$/);
    }
  });

  it('does not double the full stop after the frequency', () => {
    expect(helpText(longProgram)).toContain('Up to 3 msgs/week. Msg');
    expect(helpText(longProgram)).not.toContain('..');
  });
});

describe('consentReceipt', () => {
  const at = new Date('2026-06-03T13:30:00Z');
  it.each([
    [{ purpose: 'sms_marketing', action: 'grant', timeZone: 'Asia/Shanghai' }, ['You agreed to marketing texts', '2026-06-03 21:30 GMT+8', 'Reply STOP to cancel']],
    [{ purpose: 'sms_marketing', action: 'withdraw', timeZone: 'America/New_York' }, ['You withdrew consent to marketing texts', '2026-06-03 09:30 EDT', 'Reply START to re-join']],
    [{ purpose: 'sms_marketing', action: 'request', timeZone: 'UTC' }, ['asked for marketing texts', '2026-06-03 13:30 UTC', 'Reply YES to confirm', 'Reply STOP to cancel']],
    [{ purpose: 'location', action: 'grant', timeZone: 'Europe/Berlin' }, ['You agreed to use of your location', '2026-06-03 15:30 GMT+2', 'help@harbormall.example']],
    [{ purpose: 'partner_offers', action: 'withdraw', timeZone: 'Asia/Kathmandu' }, ['withdrew consent to offers from our partners', '2026-06-03 19:15 GMT+5:45', 'Change it anytime']],
    [{ purpose: 'sms_marketing', action: 'grant', timeZone: 'America/New_York', at: new Date('2026-01-03T04:59:00Z') }, ['2026-01-02 23:59 EST']],
  ] as const)('%j', (change, needles) => {
    const text = consentReceipt({ at, ...change }, program);
    expect(text.startsWith('Harbor Mall Rewards: ')).toBe(true);
    for (const needle of needles) expect(text).toContain(needle);
  });
});
