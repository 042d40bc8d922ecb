// Sign-up from the members' app: a phone number is the member's once they type the code sent to it, and the
// public answer never says whether a number is enrolled already.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { as, startGateway, type TestGateway } from './support/gateway.js';
import { startTwilioStandIn, type TwilioStandIn } from './support/twilio-standin.js';

const NOW = new Date('2026-06-03T16:00:00Z');

describe.each(backends)('sign-up on the %s backends', (backend) => {
  let standIn: TwilioStandIn;
  let iso: Isolated;
  let gw: TestGateway;
  let clock = NOW;

  const post = async (url: string, payload: object) => {
    const res = await gw.app.inject({ method: 'POST', url, payload, headers: { authorization: '' } });
    return { status: res.statusCode, body: res.json() };
  };
  const codeSentTo = (phone: string) =>
    eventually(async () => standIn.messages.filter((m) => m.to === phone).map((m) => /sign-up code is (\d{6})/.exec(m.body)?.[1]).find(Boolean));

  beforeAll(async () => {
    standIn = await startTwilioStandIn();
    iso = isolatedConfig(backend, {
      TWILIO_ACCOUNT_SID: standIn.accountSid, TWILIO_AUTH_TOKEN: standIn.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: standIn.url,
    });
    gw = await startGateway(iso.config, { now: () => clock });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
    await standIn?.close();
  });

  it('makes the member once the code sent to their phone comes back, with an app token that works', async () => {
    clock = NOW;
    const started = await post('/members/signup', { phone: '+14155550101', timeZone: 'America/New_York' });
    expect(started.status).toBe(202);
    expect(started.body).toEqual({ signupId: expect.any(String), expiresAt: '2026-06-03T16:15:00.000Z' });
    const code = await codeSentTo('+14155550101');
    const done = await post('/members/signup/confirm', { signupId: started.body.signupId, code });
    expect(done.status).toBe(201);
    expect(done.body).toMatchObject({ phone: '+14155550101', timeZone: 'America/New_York', appToken: expect.stringMatching(/^pmk\./) });
    const me = await gw.app.inject({ method: 'GET', url: `/members/${done.body.id}`, headers: as(done.body.appToken) });
    expect(me.statusCode).toBe(200);
    // A code is good once.
    const again = await post('/members/signup/confirm', { signupId: started.body.signupId, code });
    expect([again.status, again.body.error.code]).toEqual([400, 'SIGNUP_CODE_INVALID']);
    // Nothing of the sign-up is left behind.
    expect(await gw.deps.db.query('SELECT 1 FROM member_signups WHERE id = $1', [started.body.signupId])).toEqual([]);
  });

  it('answers the same for a number that is enrolled already, sends it nothing, and never confirms it', async () => {
    clock = NOW;
    await gw.app.inject({ method: 'POST', url: '/members', payload: { phone: '+14155550102' } });
    const before = standIn.messages.length;
    const enrolled = await post('/members/signup', { phone: '+14155550102', timeZone: 'UTC' });
    const fresh = await post('/members/signup', { phone: '+14155550103', timeZone: 'UTC' });
    expect([enrolled.status, Object.keys(enrolled.body).sort()]).toEqual([fresh.status, Object.keys(fresh.body).sort()]);
    await codeSentTo('+14155550103');
    expect(standIn.messages.slice(before).map((m) => m.to)).toEqual(['+14155550103']);
    // Every code is wrong for it: the same refusal as a wrong code anywhere.
    for (const code of ['000000', '123456']) {
      const res = await post('/members/signup/confirm', { signupId: enrolled.body.signupId, code });
      expect([res.status, res.body.error.code]).toEqual([400, 'SIGNUP_CODE_INVALID']);
    }
  });

  it('refuses after five wrong codes and after 15 minutes, even with the right code', async () => {
    clock = NOW;
    const tries = await post('/members/signup', { phone: '+14155550104', timeZone: 'UTC' });
    const code = await codeSentTo('+14155550104');
    const wrong = code === '999999' ? '999998' : '999999';
    for (let i = 0; i < 5; i++) expect((await post('/members/signup/confirm', { signupId: tries.body.signupId, code: wrong })).status).toBe(400);
    expect((await post('/members/signup/confirm', { signupId: tries.body.signupId, code })).body.error.code).toBe('SIGNUP_CODE_INVALID');

    const late = await post('/members/signup', { phone: '+14155550105', timeZone: 'UTC' });
    const lateCode = await codeSentTo('+14155550105');
    clock = new Date(NOW.getTime() + 15 * 60_000);
    expect((await post('/members/signup/confirm', { signupId: late.body.signupId, code: lateCode })).body.error.code).toBe('SIGNUP_CODE_INVALID');
  });

  it('signs up a member without a phone at once, and refuses bad input with stable codes', async () => {
    clock = NOW;
    const app = await post('/members/signup', { timeZone: 'Europe/Berlin' });
    expect(app.status).toBe(201);
    expect(app.body).toMatchObject({ phone: null, timeZone: 'Europe/Berlin', appToken: expect.any(String) });
    const zone = await post('/members/signup', { phone: '+14155550106', timeZone: 'Mars/Olympus' });
    expect([zone.status, zone.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
    const phone = await post('/members/signup', { phone: 'call me' });
    expect([phone.status, phone.body.error.code]).toEqual([400, 'PHONE_INVALID']);
    const facts = await post('/members/signup', { timeZone: 'UTC', tier: 'gold' });
    expect([facts.status, facts.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
    const code = await post('/members/signup/confirm', { signupId: app.body.id, code: '12345' });
    expect([code.status, code.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
  });
});
