// Twilio's webhooks against a forger holding one genuine signed request: Twilio's signature joins the sorted
// parameters as key+value with no separator, so the same signature covers other splits of the same string.
// Every request here is signed as Twilio signs it (the twilio library's own function), on each backend.
import { randomBytes } from 'node:crypto';
import twilio from 'twilio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, isolatedConfig, type Isolated } from './support/backends.js';
import { startTwilioStandIn, type TwilioStandIn } from './support/twilio-standin.js';

const SMS = '/webhooks/twilio/sms';
const STATUS = '/webhooks/twilio/status';
const OUR_NUMBER = '+14155550100';
const SERVICE = 'MG' + 'b'.repeat(32);
const newSid = () => `SM${randomBytes(16).toString('hex')}`;

type Params = Record<string, string | string[]>;

describe.each(backends)('Twilio webhooks on the %s backends', (backend) => {
  let standIn: TwilioStandIn;
  let iso: Isolated;
  let gw: Gateway;
  let phoneSeq = 0;

  beforeAll(async () => {
    standIn = await startTwilioStandIn();
    iso = isolatedConfig(backend, {
      TWILIO_ACCOUNT_SID: standIn.accountSid, TWILIO_AUTH_TOKEN: standIn.authToken, TWILIO_FROM: OUR_NUMBER, TWILIO_API_URL: standIn.url,
    });
    gw = await startGateway(iso.config);
  });

  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
    await standIn?.close();
  });

  /** A form body as Twilio sends it: repeated keys for arrays. */
  const form = (params: Params) => {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) body.append(k, one);
    return body.toString();
  };

  /** Posts `params` signed by Twilio for `signedParams` (the same unless a forger changed the body). */
  const post = async (path: string, params: Params, signedParams: Params = params, contentType = 'application/x-www-form-urlencoded') => {
    const signature = twilio.getExpectedTwilioSignature(standIn.authToken, `${gw.deps.config.publicUrl}${path}`, signedParams as Record<string, string>);
    const payload = contentType.startsWith('application/json') ? JSON.stringify(params) : form(params);
    const res = await gw.app.inject({ method: 'POST', url: path, payload, headers: { 'content-type': contentType, 'x-twilio-signature': signature } });
    return { status: res.statusCode, code: res.statusCode >= 400 ? (res.json().error?.code as string) : undefined, body: res.body };
  };

  /** An inbound SMS as Twilio posts it for a number in a Messaging Service. */
  const inbound = (from: string, body: string, messageSid = newSid()): Params => ({
    AccountSid: standIn.accountSid, ApiVersion: '2010-04-01', Body: body, From: from, MessageSid: messageSid,
    MessagingServiceSid: SERVICE, NumMedia: '0', NumSegments: '1', SmsMessageSid: messageSid, SmsSid: messageSid, SmsStatus: 'received', To: OUR_NUMBER,
  });

  /** A member whose sms_marketing is granted, by a signed YES. */
  const subscribed = async () => {
    const phone = `+1415556${String(1000 + ++phoneSeq)}`;
    const m = await gw.app.inject({ method: 'POST', url: '/members', payload: { phone, timeZone: 'UTC' } });
    expect(m.statusCode).toBe(201);
    const id = m.json().id as string;
    const grant = await gw.app.inject({
      method: 'POST', url: `/members/${id}/consents`, payload: { purpose: 'sms_marketing', action: 'grant', source: 'app', noticeVersion: 'n-1' },
    });
    expect(grant.statusCode).toBe(201);
    expect((await post(SMS, inbound(phone, 'YES'))).status).toBe(200);
    return { id, phone };
  };
  const granted = async (id: string) =>
    (await gw.app.inject({ method: 'GET', url: `/members/${id}` })).json().consents.sms_marketing.granted as boolean;

  it('refuses a captured STOP re-split into a "new" MessageSid (MessagingServiceSid folded into it) with 400, and changes nothing', async () => {
    const member = await subscribed();
    const stop = inbound(member.phone, 'STOP');
    expect((await post(SMS, stop)).status).toBe(200);
    expect(await granted(member.id)).toBe(false);
    expect((await post(SMS, inbound(member.phone, 'START'))).status).toBe(200);
    expect(await granted(member.id)).toBe(true);

    // The forger's body: MessageSid=SM…MessagingServiceSidMG…, MessagingServiceSid dropped. Same signed string.
    const { MessagingServiceSid, ...rest } = stop;
    const forged = { ...rest, MessageSid: `${String(stop.MessageSid)}MessagingServiceSid${String(MessagingServiceSid)}` };
    const sorted = (p: Params) => Object.keys(p).sort().map((k) => k + String(p[k])).join('');
    expect(sorted(forged)).toBe(sorted(stop));
    expect(await post(SMS, forged, forged)).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await granted(member.id)).toBe(true);
  });

  it('checks the shape of every parameter it believes: sids, our account, E.164 numbers, statuses', async () => {
    const member = await subscribed();
    const good = inbound(member.phone, 'HELP');
    const bad: Array<[string, Params]> = [
      ['a MessageSid that is no message sid', { ...good, MessageSid: 'SM123' }],
      ['an upper-case MessageSid', { ...good, MessageSid: `SM${'A'.repeat(32)}` }],
      ['an SmsSid that is no message sid', { ...good, SmsSid: 'XX' + 'a'.repeat(32) }],
      ["another account's AccountSid", { ...good, AccountSid: 'AC' + 'f'.repeat(32) }],
      ['no AccountSid', Object.fromEntries(Object.entries(good).filter(([k]) => k !== 'AccountSid'))],
      ['a From that is not E.164', { ...good, From: '14155550199' }],
      ['a To that is not E.164', { ...good, To: 'our number' }],
      ['an SmsStatus Twilio never sends', { ...good, SmsStatus: 'constructor' }],
    ];
    for (const [what, params] of bad) {
      expect({ what, ...(await post(SMS, params)) }).toMatchObject({ what, status: 400, code: 'VALIDATION_FAILED' });
    }
    const callback = { AccountSid: standIn.accountSid, MessageSid: newSid(), MessageStatus: 'delivered', To: member.phone, From: OUR_NUMBER };
    expect((await post(STATUS, callback)).status).toBe(204);
    for (const [what, params] of [
      ['a MessageStatus Twilio never sends', { ...callback, MessageStatus: 'constructor' }],
      ['an empty MessageStatus', { ...callback, MessageStatus: '' }],
      ['an ErrorCode that is no number', { ...callback, MessageStatus: 'failed', ErrorCode: '21610x' }],
      ['a MessageSid that is no message sid', { ...callback, MessageSid: `${newSid()}x` }],
    ] as Array<[string, Params]>) {
      expect({ what, ...(await post(STATUS, params)) }).toMatchObject({ what, status: 400, code: 'VALIDATION_FAILED' });
    }
  });

  it('takes form bodies only: a JSON body signed over the same parameters gets 415', async () => {
    const member = await subscribed();
    const stop = inbound(member.phone, 'STOP');
    expect(await post(SMS, stop, stop, 'application/json')).toMatchObject({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    const callback = { AccountSid: standIn.accountSid, MessageSid: newSid(), MessageStatus: 'delivered' };
    expect(await post(STATUS, callback, callback, 'application/json')).toMatchObject({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(await granted(member.id)).toBe(true);
  });

  it('answers a signed body with a repeated parameter or a control character 400, not 500', async () => {
    const member = await subscribed();
    const cases: Array<[string, Params]> = [
      ['a repeated Body', { ...inbound(member.phone, 'STOP'), Body: ['STOP', 'HELP'] }],
      ['a repeated MessageSid', { ...inbound(member.phone, 'STOP'), MessageSid: [newSid(), newSid()] }],
      ['a NUL in an unused parameter', { ...inbound(member.phone, 'STOP'), FromCity: 'SAN\u0000FRANCISCO' }],
    ];
    for (const [what, params] of cases) {
      expect({ what, ...(await post(SMS, params)) }).toMatchObject({ what, status: 400, code: 'VALIDATION_FAILED' });
    }
    expect(await granted(member.id)).toBe(true);
    // Line breaks and tabs are text a member may send.
    expect((await post(SMS, inbound(member.phone, 'hello\r\n\tthere'))).status).toBe(200);
    // What the member typed is never refused: a STOP with stray control characters is still a STOP.
    expect((await post(SMS, inbound(member.phone, 'HELP \u001b[2J'))).status).toBe(200);
    expect((await post(SMS, inbound(member.phone, 'STOP\u0000'))).status).toBe(200);
    expect(await granted(member.id)).toBe(false);
  });

  it('takes a short code as the programme\'s own number, never as the member\'s', async () => {
    const member = await subscribed();
    expect(await post(SMS, { ...inbound(member.phone, 'HELP'), To: '12345' })).toMatchObject({ status: 200 });
    expect(await post(SMS, { ...inbound(member.phone, 'HELP'), To: '1234567890123' })).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
  });
});
