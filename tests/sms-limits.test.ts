// What anyone can make the gateway text, and make, without an account: sign-up codes limited per number and by an
// hourly budget (refused alike for enrolled and other numbers), texts only to SMS_COUNTRIES, one opt-in request per
// number a day, sign-ups without a phone limited per address, and members who never used the programme purged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { optInConfirmationRequest } from '../consent/index.js';
import { programInfo } from '../gateway/domain/consent-changes.js';
import { sendSmsJob, sendSystemSmsJob } from '../gateway/domain/deliveries.js';
import { withinCountries } from '../gateway/sms/countries.js';
import type { SmsMessage, SmsSender } from '../gateway/sms/sender.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { replySms } from './support/consent.js';
import { as, startGateway, type TestGateway } from './support/gateway.js';
import { startTwilioStandIn, type TwilioStandIn } from './support/twilio-standin.js';

const NOW = new Date('2026-06-03T16:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const STORE_AT = { lat: 40.7411, lon: -73.9897 };

describe.each(backends)('SMS and sign-up limits on the %s backends', (backend) => {
  let standIn: TwilioStandIn;
  let iso: Isolated;
  let apiIso: Isolated;
  let gw: TestGateway;
  /** Serves the API only: its jobs wait, and the tests run them one by one. */
  let api: TestGateway;
  let clock = NOW;

  const signup = async (payload: object, address = '198.51.100.1') => {
    const res = await gw.app.inject({ method: 'POST', url: '/members/signup', payload, headers: { authorization: '' }, remoteAddress: address });
    return { status: res.statusCode, body: res.json(), retryAfter: res.headers['retry-after'] };
  };
  const textsTo = (phone: string) => standIn.messages.filter((m) => m.to === phone);
  const codesTo = (phone: string) => textsTo(phone).filter((m) => /sign-up code is/.test(m.body));
  /** Every code job queued so far has run: a sign-up made after them has its code out. */
  const codesSettle = async (n: number) => {
    const marker = `+1415555${String(n).padStart(4, '0')}`;
    expect((await signup({ phone: marker })).status).toBe(202);
    await eventually(async () => (codesTo(marker).length ? true : undefined));
  };

  beforeAll(async () => {
    standIn = await startTwilioStandIn();
    const twilioEnv = {
      TWILIO_ACCOUNT_SID: standIn.accountSid, TWILIO_AUTH_TOKEN: standIn.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: standIn.url,
      // The countries are the sender's (US), the budget small, the per-number limits their defaults (3 an hour, 5 a day).
      SMS_COUNTRIES: '', SIGNUP_CODES_PER_HOUR: '8', SIGNUP_WITHOUT_PHONE_PER_ADDRESS_PER_DAY: '2',
    };
    iso = isolatedConfig(backend, twilioEnv);
    apiIso = isolatedConfig(backend, { ...twilioEnv, ROLE: 'api' });
    gw = await startGateway(iso.config, { now: () => clock });
    api = await startGateway(apiIso.config, { now: () => clock });
  }, 180_000); // two gateways, each migrating its own database
  afterAll(async () => {
    await gw?.close();
    await api?.close();
    await iso?.cleanup();
    await apiIso?.cleanup();
    await standIn?.close();
  });

  it('sends a number at most 3 codes an hour and 5 a day, and refuses an enrolled number exactly alike', async () => {
    clock = NOW;
    const fresh = '+14155550201';
    const enrolled = '+14155550202';
    expect((await gw.app.inject({ method: 'POST', url: '/members', payload: { phone: enrolled } })).statusCode).toBe(201);
    const answers = async (phone: string, n: number) => {
      const out = [];
      for (let i = 0; i < n; i++) out.push(await signup({ phone }));
      return out;
    };
    const first = await answers(fresh, 4);
    const second = await answers(enrolled, 4);
    expect(first.map((a) => a.status)).toEqual([202, 202, 202, 429]);
    expect(second.map((a) => a.status)).toEqual([202, 202, 202, 429]);
    // The refusal says nothing of which number is a member's: same body, same Retry-After (the first code's hour).
    expect(first[3]!.body).toEqual(second[3]!.body);
    expect(first[3]!.body.error).toMatchObject({ code: 'SMS_LIMIT', details: { retryAfterSeconds: 3600 } });
    expect([first[3]!.retryAfter, second[3]!.retryAfter]).toEqual(['3600', '3600']);
    await eventually(async () => (codesTo(fresh).length >= 3 ? true : undefined));
    await codesSettle(1);
    expect(codesTo(fresh)).toHaveLength(3);
    expect(codesTo(enrolled)).toHaveLength(0);

    // An hour on, two more each (five in the day), then nothing until the first code is a day old.
    clock = new Date(NOW.getTime() + HOUR);
    expect((await answers(fresh, 3)).map((a) => a.status)).toEqual([202, 202, 429]);
    const dayFull = await answers(enrolled, 3);
    expect(dayFull.map((a) => a.status)).toEqual([202, 202, 429]);
    expect(dayFull[2]!.body.error.details.retryAfterSeconds).toBe(23 * 3600);
    clock = new Date(NOW.getTime() + DAY + 1000);
    expect((await signup({ phone: fresh })).status).toBe(202);
    await eventually(async () => (codesTo(fresh).length >= 6 ? true : undefined));
    await codesSettle(2);
    expect(codesTo(fresh)).toHaveLength(6);
  });

  it('holds an hourly budget of sign-up codes, refusing enrolled and other numbers alike, that administrators read', async () => {
    clock = new Date(NOW.getTime() + 3 * DAY);
    expect((await gw.app.inject({ method: 'POST', url: '/members', payload: { phone: '+14155550300' } })).statusCode).toBe(201);
    const statuses = [];
    for (let i = 1; i <= 8; i++) statuses.push((await signup({ phone: `+141555503${String(i).padStart(2, '0')}` })).status);
    expect(statuses).toEqual(Array(8).fill(202));
    const other = await signup({ phone: '+14155550399' });
    const member = await signup({ phone: '+14155550300' });
    expect(other.status).toBe(429);
    expect(other.body).toEqual(member.body);
    expect(other.body.error).toMatchObject({ code: 'SMS_LIMIT', details: { retryAfterSeconds: 3600 } });

    const limits = await gw.app.inject({ method: 'GET', url: '/admin/sms-limits' });
    expect(limits.statusCode).toBe(200);
    expect(limits.json()).toMatchObject({
      countries: ['US'], codesPerNumberPerHour: 3, codesPerNumberPerDay: 5, codesPerHour: 8,
      current: { hour: clock.toISOString(), used: 8, refused: 2, remaining: 0 },
    });
    clock = new Date(clock.getTime() + HOUR);
    expect((await signup({ phone: '+14155550399' })).status).toBe(202);
  });

  it('texts only numbers of SMS_COUNTRIES (by default the sender\'s): no code, no opt-in request, no offer, no reply elsewhere', async () => {
    clock = new Date(NOW.getTime() + 6 * DAY);
    const french = '+33612345678';
    const refused = await signup({ phone: french });
    expect([refused.status, refused.body.error.code]).toEqual([409, 'SMS_COUNTRY_NOT_ALLOWED']);

    const m = await gw.app.inject({ method: 'POST', url: '/members', payload: { phone: french, timeZone: 'UTC' } });
    const id = m.json().id as string;
    const grant = (purpose: string) =>
      gw.app.inject({ method: 'POST', url: `/members/${id}/consents`, payload: { purpose, action: 'grant', source: 'app' } });
    expect((await grant('location')).statusCode).toBe(201);
    const sms = await grant('sms_marketing');
    expect([sms.statusCode, sms.json().error.code]).toEqual([409, 'SMS_COUNTRY_NOT_ALLOWED']);
    // The member's own YES still counts, but gets no reply.
    const yes = await replySms(gw, french, 'YES');
    expect([yes.status, yes.reply]).toEqual([200, null]);

    const store = await gw.app.inject({
      method: 'POST', url: '/stores', payload: { name: 'Main St', timeZone: 'America/New_York', location: STORE_AT, geofence: { radiusM: 150 } },
    });
    const campaign = await gw.app.inject({
      method: 'POST', url: '/campaigns',
      payload: { name: 'Coffee', storeId: store.json().id, trigger: { kind: 'checkin' }, offer: { title: 'Coffee', message: 'Coffee with code {code}.' } },
    });
    expect(campaign.statusCode).toBe(201);
    const visit = await gw.app.inject({ method: 'POST', url: '/checkins', payload: { memberId: id, ...STORE_AT, accuracyM: 5, at: clock.toISOString() } });
    expect(visit.json().decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'SMS_COUNTRY_NOT_ALLOWED' });
    expect(visit.json().deliveryIds).toEqual([]);
    expect(textsTo(french)).toEqual([]);
  });

  it('cancels a queued offer whose number is no longer in SMS_COUNTRIES, saying why', async () => {
    clock = new Date(NOW.getTime() + 7 * DAY);
    const phone = '+14155550401';
    const m = await api.app.inject({ method: 'POST', url: '/members', payload: { phone, timeZone: 'UTC' } });
    const id = m.json().id as string;
    await api.app.inject({ method: 'POST', url: `/members/${id}/consents`, payload: { purpose: 'location', action: 'grant', source: 'app' } });
    expect((await replySms(api, phone, 'YES')).status).toBe(200);
    const store = await api.app.inject({
      method: 'POST', url: '/stores', payload: { name: 'Main St', timeZone: 'America/New_York', location: STORE_AT, geofence: { radiusM: 150 } },
    });
    await api.app.inject({
      method: 'POST', url: '/campaigns',
      payload: { name: 'Coffee', storeId: store.json().id, trigger: { kind: 'checkin' }, offer: { title: 'Coffee', message: 'Coffee with code {code}.' } },
    });
    const visit = await api.app.inject({ method: 'POST', url: '/checkins', payload: { memberId: id, ...STORE_AT, accuracyM: 5, at: clock.toISOString() } });
    const deliveryId = visit.json().deliveryIds[0] as string;
    expect(deliveryId).toEqual(expect.any(String));
    // The programme now texts only British numbers (a gateway restarted with SMS_COUNTRIES=GB).
    const deps = { ...api.deps, config: { ...api.deps.config, smsCountries: ['GB'] } };
    await sendSmsJob(deps, { deliveryId }, { attempt: 1, maxAttempts: 3 });
    const d = await api.app.inject({ method: 'GET', url: `/deliveries/${deliveryId}` });
    expect(d.json()).toMatchObject({ status: 'cancelled', statusReason: 'SMS_COUNTRY_NOT_ALLOWED' });
    expect(textsTo(phone)).toEqual([]);
  });

  it('refuses any message outside the countries at the sender itself, without reaching the carrier', async () => {
    const sent: SmsMessage[] = [];
    const carrier: SmsSender = { kind: 'twilio', send: async (m) => (sent.push(m), { providerId: 'SM1' }), findSent: async () => null };
    const sender = withinCountries(carrier, ['US', 'CA']);
    await expect(sender.send({ to: '+447700900123', body: 'hi' })).rejects.toMatchObject({ retryable: false, code: 'SMS_COUNTRY_NOT_ALLOWED' });
    await expect(sender.send({ to: '+999', body: 'hi' })).rejects.toMatchObject({ code: 'SMS_COUNTRY_NOT_ALLOWED' });
    await sender.send({ to: '+16475550100', body: 'hi' });
    expect(sent.map((m) => m.to)).toEqual(['+16475550100']);
  });

  it('sends one opt-in request per number in 24 hours, however often marketing SMS is granted again', async () => {
    clock = new Date(NOW.getTime() + 8 * DAY);
    const phone = '+14155550501';
    const id = (await api.app.inject({ method: 'POST', url: '/members', payload: { phone, timeZone: 'UTC' } })).json().id as string;
    const text = optInConfirmationRequest(programInfo(api.deps));
    const grantAndSend = async (action: 'grant' | 'withdraw' = 'grant') => {
      const res = await api.app.inject({ method: 'POST', url: `/members/${id}/consents`, payload: { purpose: 'sms_marketing', action, source: 'app' } });
      expect(res.statusCode).toBe(201);
      if (action === 'grant') {
        await sendSystemSmsJob(api.deps, { memberId: id, text, onlyWhilePending: 'sms_marketing', ref: `optin-${res.json().event.id}` });
      }
    };
    await grantAndSend();
    await grantAndSend();
    await grantAndSend('withdraw');
    await grantAndSend();
    expect(textsTo(phone).map((m) => m.body)).toEqual([text]);
    clock = new Date(clock.getTime() + DAY + 60_000);
    await grantAndSend();
    expect(textsTo(phone).map((m) => m.body)).toEqual([text, text]);
  });

  it('makes at most SIGNUP_WITHOUT_PHONE_PER_ADDRESS_PER_DAY members without a phone per address in a day', async () => {
    clock = new Date(NOW.getTime() + 10 * DAY);
    const from = (address: string) => signup({ timeZone: 'UTC' }, address);
    expect([(await from('203.0.113.7')).status, (await from('203.0.113.7')).status]).toEqual([201, 201]);
    const third = await from('203.0.113.7');
    expect([third.status, third.body.error.code, third.retryAfter]).toEqual([429, 'RATE_LIMITED', String(24 * 3600)]);
    expect((await from('203.0.113.8')).status).toBe(201);
    clock = new Date(clock.getTime() + DAY);
    expect((await from('203.0.113.7')).status).toBe(201);
  });

  it('purges members who signed up without a phone and never used the programme, after 30 days', async () => {
    clock = new Date(NOW.getTime() + 20 * DAY);
    const unused = (await signup({ timeZone: 'UTC' }, '203.0.113.20')).body;
    const used = (await signup({ timeZone: 'UTC' }, '203.0.113.21')).body;
    const grant = await gw.app.inject({
      method: 'POST', url: `/members/${used.id}/consents`, payload: { purpose: 'location', action: 'grant', source: 'app' }, headers: as(used.appToken),
    });
    expect(grant.statusCode).toBe(201);
    const tagged = (await signup({ timeZone: 'UTC' }, '203.0.113.22')).body;
    expect((await gw.app.inject({ method: 'PATCH', url: `/members/${tagged.id}`, payload: { tags: ['vip'] } })).statusCode).toBe(200);
    const operators = (await gw.app.inject({ method: 'POST', url: '/members', payload: {} })).json();
    const exists = async (id: string) => (await gw.deps.db.query('SELECT 1 FROM members WHERE id = $1', [id])).length === 1;

    // Members' rows are dated by the database's clock: 29 days on, nothing goes; 31 days on, the unused one.
    clock = new Date(Date.now() + 29 * DAY);
    expect((await gw.app.inject({ method: 'POST', url: '/admin/retention/run' })).json().unusedMembers).toBe(0);
    clock = new Date(Date.now() + 31 * DAY);
    const run = await gw.app.inject({ method: 'POST', url: '/admin/retention/run' });
    expect(run.json().unusedMembers).toBeGreaterThanOrEqual(1);
    expect(await exists(unused.id)).toBe(false);
    for (const kept of [used.id, tagged.id, operators.id]) expect(await exists(kept)).toBe(true);
    const token = await gw.app.inject({ method: 'GET', url: `/members/${unused.id}`, headers: as(unused.appToken) });
    expect(token.statusCode).toBe(401);
  });
  it('undoes a sign-up whose code could not be queued (503 QUEUE_UNAVAILABLE), so its retries cost the number no code', async () => {
    clock = new Date(NOW.getTime() + 40 * DAY);
    const phone = '+14155550401';
    const queue = gw.deps.queue;
    const enqueue = queue.enqueue;
    queue.enqueue = async () => { throw new Error('Connection is closed.'); };
    try {
      for (let i = 0; i < 4; i++) {
        const refused = await signup({ phone });
        expect([refused.status, refused.body.error.code, refused.retryAfter]).toEqual([503, 'QUEUE_UNAVAILABLE', '2']);
      }
    } finally {
      queue.enqueue = enqueue;
    }
    expect(await gw.deps.db.query('SELECT 1 FROM member_signups WHERE phone_e164 = $1', [phone])).toEqual([]);
    // The queue back: the number still has its 3 codes of the hour.
    expect((await Promise.all([1, 2, 3, 4].map(() => signup({ phone })))).map((a) => a.status).sort()).toEqual([202, 202, 202, 429]);
    await eventually(async () => (codesTo(phone).length >= 3 ? true : undefined));
  });
});
