// Consent rules as a member meets them, over HTTP: SMS keywords through the signed Twilio webhook, double
// opt-in, quiet hours on the member's clock (DST included), carrier opt-outs, receipts, export, erasure,
// retention and drop counters. Every scenario runs on each backend in `backends`.
import twilio from 'twilio';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sendSystemSmsJob } from '../gateway/domain/deliveries.js';
import { MEMBER_TABLES } from '../gateway/domain/privacy.js';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents, replySms } from './support/consent.js';
import { daytimeZone } from './support/daytime.js';
import { startTwilioStandIn, type TwilioStandIn } from './support/twilio-standin.js';

const STORE_AT = { lat: 31.2304, lon: 121.4737 };
const WEBHOOK = '/webhooks/twilio/sms';
const PROGRAM = 'Nearby Offers';
const OPT_OUT = `${PROGRAM}: You are unsubscribed and will receive no more messages. Reply START to re-join.`;
const OPTED_IN = `${PROGRAM}: You are subscribed to marketing texts. Up to 3 msgs/week. Msg & data rates may apply. Reply HELP for help. Reply STOP to cancel.`;
const HELP = `${PROGRAM} marketing texts. Help: help@example.com. Up to 3 msgs/week. Msg & data rates may apply. Reply STOP to cancel.`;

// The injected clock: a moment a test chooses, moving on with real time. Unless a test sets its own, it is
// 12:00 in Shanghai, where the members live by default.
const DAYTIME = '2026-06-03T04:00:00Z';
let base = Date.parse(DAYTIME);
let t0 = Date.now();
const clock = () => new Date(base + (Date.now() - t0));
const setClock = (iso: string) => {
  base = Date.parse(iso);
  t0 = Date.now();
};

/** TwiML escapes every '&', '<', '>' and quote as a numeric entity. */
const unescapeXml = (s: string | null) => s?.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n))) ?? null;

describe.each(backends)('consent scenarios on the %s backends', (backend) => {
  let standIn: TwilioStandIn;
  let iso: Isolated;
  let gw: Gateway;
  let phoneSeq = 0;

  const twilioEnv = () => ({
    TWILIO_ACCOUNT_SID: standIn.accountSid, TWILIO_AUTH_TOKEN: standIn.authToken, TWILIO_FROM: '+14155550100', TWILIO_API_URL: standIn.url,
  });

  const call = async (method: 'GET' | 'POST', url: string, payload?: object, gateway = gw) => {
    const res = await gateway.app.inject({ method, url, payload });
    return { status: res.statusCode, body: res.json(), headers: res.headers };
  };

  const nextPhone = () => `+1415555${3000 + ++phoneSeq}`;

  /** A member with the given purposes granted (sms_marketing confirmed by a signed YES). */
  const newMember = async (purposes: string[], timeZone = 'Asia/Shanghai', gateway = gw) => {
    const phone = nextPhone();
    const m = await call('POST', '/members', { phone, timeZone }, gateway);
    expect(m.status).toBe(201);
    await grantConsents(gateway, m.body.id, phone, purposes, { beforeConfirm: () => optInRequestSent(phone) });
    return { id: m.body.id as string, phone };
  };

  const openStore = async (gateway: Gateway) => {
    const store = await call('POST', '/stores', {
      name: 'Nanjing Rd', timeZone: 'Asia/Shanghai', location: STORE_AT, geofence: { radiusM: 100 },
    }, gateway);
    expect(store.status).toBe(201);
    const campaign = await call('POST', '/campaigns', {
      name: 'Dumplings', storeId: store.body.id, trigger: { kind: 'checkin' },
      offer: { title: 'Dumplings', message: 'Dumplings with code {code}.' },
    }, gateway);
    expect(campaign.status).toBe(201);
    return { storeId: store.body.id as string, campaignId: campaign.body.id as string };
  };

  const checkin = (memberId: string, at = clock(), gateway = gw) =>
    call('POST', '/checkins', { memberId, ...STORE_AT, accuracyM: 5, at: at.toISOString() }, gateway);

  const settled = (deliveryId: string, gateway = gw) =>
    eventually(async () => {
      const d = await call('GET', `/deliveries/${deliveryId}`, undefined, gateway);
      return ['queued', 'sending'].includes(d.body.status) ? undefined : d.body;
    });

  /** Everything the Twilio stand-in was asked to send to a phone; offers carry a coupon code. */
  const sentTo = (phone: string) => standIn.messages.filter((m) => m.to === phone);
  const offersTo = (phone: string) => sentTo(phone).filter((m) => /code [0-9A-Z]{13}/.test(m.body));
  /** The opt-in request goes out from the worker; waiting for it keeps later stand-in failures for the offer. */
  const optInRequestSent = (phone: string) => eventually(async () => sentTo(phone).find((m) => /Reply YES to confirm/.test(m.body)));

  const history = async (memberId: string, gateway = gw) =>
    (await call('GET', `/members/${memberId}/consents`, undefined, gateway)).body.history as Array<{
      purpose: string; action: string; source: string; actor: string | null;
    }>;
  const smsLedger = async (memberId: string) =>
    (await history(memberId)).filter((e) => e.purpose === 'sms_marketing').map((e) => `${e.action}:${e.source}`);

  const count = async (sql: string, values: unknown[] = []) => (await gw.deps.db.query<{ n: number }>(sql, values))[0]!.n;
  const ledgerSize = () => count('SELECT count(*)::int n FROM consent_events');
  const inboundSize = () => count('SELECT count(*)::int n FROM inbound_sms');

  beforeAll(async () => {
    standIn = await startTwilioStandIn();
    iso = isolatedConfig(backend, { ...twilioEnv(), RETENTION_DAYS: '30', JOB_ATTEMPTS: '3' });
    gw = await startGateway(iso.config, { now: clock });
    await openStore(gw);
  });

  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
    await standIn?.close();
  });

  beforeEach(() => setClock(DAYTIME));

  it('STOP while an offer waits in the queue: the offer is cancelled for consent and only the opt-out confirmation goes out', async () => {
    // The race is made certain by taking the worker away: the offer is queued by an API-only gateway, STOP
    // arrives there, and only then does a gateway with a worker pick the job up.
    const raceIso = isolatedConfig(backend, twilioEnv());
    const opened: Gateway[] = [];
    const start = async (role: 'all' | 'api') => {
      const g = await startGateway({ ...raceIso.config, role }, { now: clock });
      opened.push(g);
      return g;
    };
    try {
      const first = await start('all');
      await openStore(first);
      const member = await newMember(['location', 'sms_marketing'], 'Asia/Shanghai', first);
      await optInRequestSent(member.phone);
      await first.close();

      const apiOnly = await start('api');
      const offered = await checkin(member.id, clock(), apiOnly);
      expect(offered.body.decisions[0]).toMatchObject({ outcome: 'offer_queued', reasonCode: null });
      const deliveryId = offered.body.deliveryIds[0] as string;
      expect((await call('GET', `/deliveries/${deliveryId}`, undefined, apiOnly)).body.status).toBe('queued');
      const sentBeforeStop = sentTo(member.phone).length;

      const stop = await replySms(apiOnly, member.phone, 'STOP');
      expect(stop.status).toBe(200);
      expect(stop.raw!.match(/<Message>/g)).toHaveLength(1);
      expect(unescapeXml(stop.reply)).toBe(OPT_OUT);
      expect(stop.reply).not.toMatch(/code [0-9A-Z]{13}/);
      // A second STOP (the member insists) gets no second confirmation.
      const again = await replySms(apiOnly, member.phone, 'stop');
      expect([again.status, again.reply, again.raw]).toEqual([200, null, '<?xml version="1.0" encoding="UTF-8"?><Response></Response>']);
      await apiOnly.close();

      const worker = await start('all');
      const d = await settled(deliveryId, worker);
      expect(d).toMatchObject({ status: 'cancelled', statusReason: 'CONSENT_WITHDRAWN', attempts: 0, providerId: null });
      expect(offersTo(member.phone)).toEqual([]);
      expect(sentTo(member.phone)).toHaveLength(sentBeforeStop);
      const record = await call('GET', `/members/${member.id}`, undefined, worker);
      expect(record.body.offers[0].delivery).toMatchObject({ status: 'cancelled', statusReason: 'CONSENT_WITHDRAWN' });
      expect(record.body.consents.sms_marketing).toMatchObject({ granted: false, pending: false, source: 'sms_keyword' });
      const events = await history(member.id, worker);
      expect(events.map((e) => `${e.purpose}:${e.action}:${e.source}`)).toEqual([
        'location:grant:app', 'sms_marketing:request:app', 'sms_marketing:grant:sms_keyword', 'sms_marketing:withdraw:sms_keyword',
      ]);
    } finally {
      for (const g of opened) await g.close().catch(() => {});
      await raceIso.cleanup();
    }
  });

  it('quiet hours are read on the member\'s clock: 22:00 in Shanghai sends nothing, 11:00 sends', async () => {
    const member = await newMember(['location', 'sms_marketing']);
    await optInRequestSent(member.phone);

    setClock('2026-06-03T14:00:00Z'); // 22:00 in Shanghai, 14:00 on the server
    const night = await checkin(member.id);
    expect(night.status).toBe(202);
    expect(night.body.deliveryIds).toEqual([]);
    expect(night.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'QUIET_HOURS', campaignId: expect.any(String) });
    // Not kept for later: the decision says when contact would be allowed, 08:00 in Shanghai.
    expect(night.body.decisions[0].trace.note).toBe('quiet hours in Asia/Shanghai until 2026-06-04T00:00:00.000Z');
    expect(await count('SELECT count(*)::int n FROM coupons WHERE member_id = $1', [member.id])).toBe(0);
    expect(await count('SELECT count(*)::int n FROM deliveries WHERE member_id = $1', [member.id])).toBe(0);

    setClock('2026-06-04T03:00:00Z'); // 11:00 in Shanghai, 03:00 on the server
    const day = await checkin(member.id);
    expect(day.body.decisions[0]).toMatchObject({ outcome: 'offer_queued', reasonCode: null });
    expect(await settled(day.body.deliveryIds[0])).toMatchObject({ status: 'sent', attempts: 1 });
    expect(offersTo(member.phone)).toHaveLength(1);
    const why = await call('GET', `/members/${member.id}/decisions`);
    expect(why.body.decisions.map((d: { reasonCode: string | null }) => d.reasonCode)).toEqual([null, 'QUIET_HOURS']);
  });

  describe('quiet hours across the DST changes of America/New_York', () => {
    // [instant on the server, what the member's clock shows, expected]
    const boundaries: Array<[string, string, 'sent' | 'quiet']> = [
      ['2026-03-07T12:59:00Z', '07:59 EST, Saturday before spring forward', 'quiet'],
      ['2026-03-07T13:00:00Z', '08:00 EST', 'sent'],
      ['2026-03-09T11:59:00Z', '07:59 EDT, Monday after spring forward', 'quiet'],
      ['2026-03-09T12:00:00Z', '08:00 EDT', 'sent'],
      ['2026-03-10T00:59:00Z', '20:59 EDT', 'sent'],
      ['2026-03-10T01:00:00Z', '21:00 EDT', 'quiet'],
      ['2026-10-31T11:59:00Z', '07:59 EDT, Saturday before fall back', 'quiet'],
      ['2026-10-31T12:00:00Z', '08:00 EDT', 'sent'],
      ['2026-11-02T12:59:00Z', '07:59 EST, Monday after fall back', 'quiet'],
      ['2026-11-02T13:00:00Z', '08:00 EST', 'sent'],
    ];

    it.each(boundaries)('at %s (%s) the offer is %s', async (instant, _local, expected) => {
      setClock(instant);
      const member = await newMember(['location', 'sms_marketing'], 'America/New_York');
      const res = await checkin(member.id);
      if (expected === 'quiet') {
        expect(res.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'QUIET_HOURS' });
        expect(res.body.deliveryIds).toEqual([]);
      } else {
        expect(res.body.decisions[0]).toMatchObject({ outcome: 'offer_queued', reasonCode: null });
        // Settled here, so the worker reads the clock of this moment, not the next test's.
        expect(await settled(res.body.deliveryIds[0])).toMatchObject({ status: 'sent' });
      }
    });

    it.each([
      ['2026-03-08T06:30:00Z', '01:30 EST, the night clocks go forward', '2026-03-08T12:00:00.000Z'],
      ['2026-11-01T05:30:00Z', '01:30 EDT, the night clocks go back', '2026-11-01T13:00:00.000Z'],
    ])('at %s (%s) quiet hours end at 08:00 on the new offset, %s', async (instant, _local, until) => {
      setClock(instant);
      const member = await newMember(['location', 'sms_marketing'], 'America/New_York');
      const res = await checkin(member.id);
      expect(res.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'QUIET_HOURS' });
      expect(res.body.decisions[0].trace.note).toBe(`quiet hours in America/New_York until ${until}`);
    });
  });

  it('START after STOP re-grants marketing SMS from the phone, and offers flow again', async () => {
    const member = await newMember(['location', 'sms_marketing']);
    await optInRequestSent(member.phone);
    const first = await checkin(member.id);
    expect(await settled(first.body.deliveryIds[0])).toMatchObject({ status: 'sent' });

    expect(unescapeXml((await replySms(gw, member.phone, 'STOP')).reply)).toBe(OPT_OUT);
    const out = await checkin(member.id);
    expect(out.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'CONSENT_WITHDRAWN' });

    const start = await replySms(gw, member.phone, 'START');
    expect(start.status).toBe(200);
    expect(unescapeXml(start.reply)).toBe(OPTED_IN);
    expect(await smsLedger(member.id)).toEqual(['request:app', 'grant:sms_keyword', 'withdraw:sms_keyword', 'grant:sms_keyword']);
    // Re-joining does not reset the contact limit (1 offer per 4 hours).
    const tooSoon = await checkin(member.id);
    expect(tooSoon.body.decisions[0]).toMatchObject({ outcome: 'no_match', reasonCode: 'CONTACT_LIMIT' });

    setClock('2026-06-03T08:01:00Z'); // 16:01 in Shanghai, 4 hours and a minute later
    const again = await checkin(member.id);
    expect(again.body.decisions[0]).toMatchObject({ outcome: 'offer_queued' });
    expect(await settled(again.body.deliveryIds[0])).toMatchObject({ status: 'sent' });
    expect(offersTo(member.phone)).toHaveLength(2);
  });

  it('a replayed webhook (same MessageSid) changes nothing and gets no second reply, even when sent twice at once', async () => {
    const member = await newMember(['location', 'sms_marketing']);
    const yesSid = (await gw.deps.db.query<{ message_sid: string }>(
      "SELECT message_sid FROM inbound_sms WHERE member_id = $1 AND keyword = 'start'", [member.id],
    ))[0]!.message_sid;
    const stopSid = 'SM' + 'c'.repeat(32);

    const [a, b] = await Promise.all([replySms(gw, member.phone, 'STOP', stopSid), replySms(gw, member.phone, 'STOP', stopSid)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect([a.reply, b.reply].filter((r) => r !== null).map(unescapeXml)).toEqual([OPT_OUT]);
    const ledger = await ledgerSize();
    const inbound = await inboundSize();

    const replayStop = await replySms(gw, member.phone, 'STOP', stopSid);
    // An old YES replayed after the STOP must not re-grant.
    const replayYes = await replySms(gw, member.phone, 'YES', yesSid);
    for (const r of [replayStop, replayYes]) {
      expect([r.status, r.reply]).toEqual([200, null]);
      expect(r.raw).toBe('<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
    }
    expect(await ledgerSize()).toBe(ledger);
    expect(await inboundSize()).toBe(inbound);
    expect(await smsLedger(member.id)).toEqual(['request:app', 'grant:sms_keyword', 'withdraw:sms_keyword']);
  });

  it('refuses unsigned or wrongly signed webhooks with 403 SIGNATURE_INVALID and changes nothing', async () => {
    const member = await newMember(['location', 'sms_marketing']);
    const sid = 'SM' + 'd'.repeat(32);
    const params = { MessageSid: sid, From: member.phone, To: '+14155550100', Body: 'STOP', NumMedia: '0' };
    const url = `${gw.deps.config.publicUrl}${WEBHOOK}`;
    const signed = (token: string, signedUrl: string, signedParams: Record<string, string>) =>
      twilio.getExpectedTwilioSignature(token, signedUrl, signedParams);
    const forgeries: Array<[string, Record<string, string>, Record<string, string>]> = [
      ['no signature', params, {}],
      ['an empty signature', params, { 'x-twilio-signature': '' }],
      ['a signature made with another auth token', params, { 'x-twilio-signature': signed('not-our-token', url, params) }],
      ['a signature for another URL', params, { 'x-twilio-signature': signed(standIn.authToken, `https://elsewhere.example${WEBHOOK}`, params) }],
      ['a body changed after signing', { ...params, Body: 'STOP' }, { 'x-twilio-signature': signed(standIn.authToken, url, { ...params, Body: 'HELP' }) }],
      ['a parameter added after signing', { ...params, Extra: '1' }, { 'x-twilio-signature': signed(standIn.authToken, url, params) }],
    ];
    const ledger = await ledgerSize();
    const inbound = await inboundSize();
    for (const [what, body, headers] of forgeries) {
      const res = await gw.app.inject({
        method: 'POST', url: WEBHOOK, payload: new URLSearchParams(body).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      });
      expect({ what, status: res.statusCode, code: res.json().error?.code }).toEqual({ what, status: 403, code: 'SIGNATURE_INVALID' });
    }
    expect(await ledgerSize()).toBe(ledger);
    expect(await inboundSize()).toBe(inbound);
    expect((await call('GET', `/members/${member.id}`)).body.consents.sms_marketing.granted).toBe(true);
    // A forgery did not use up the MessageSid: the genuine message with it still counts.
    expect(unescapeXml((await replySms(gw, member.phone, 'STOP', sid)).reply)).toBe(OPT_OUT);
  });

  it('HELP and INFO get the help text and change nothing; keywords ignore case, spacing and trailing punctuation', async () => {
    const member = await newMember(['location', 'sms_marketing']);
    const ledger = await ledgerSize();
    for (const body of ['HELP', 'help', '  Info ', 'Help!']) {
      const res = await replySms(gw, member.phone, body);
      expect({ body, status: res.status, reply: unescapeXml(res.reply) }).toEqual({ body, status: 200, reply: HELP });
    }
    // Help is for anyone who texts the number, member or not.
    expect(unescapeXml((await replySms(gw, '+14155559876', 'HELP')).reply)).toBe(HELP);
    expect(await ledgerSize()).toBe(ledger);

    // Not a keyword: the whole message must be one.
    expect((await replySms(gw, member.phone, 'stop please')).reply).toBeNull();
    expect(await ledgerSize()).toBe(ledger);

    expect(unescapeXml((await replySms(gw, member.phone, '  stop ')).reply)).toBe(OPT_OUT);
    expect(await smsLedger(member.id)).toEqual(['request:app', 'grant:sms_keyword', 'withdraw:sms_keyword']);
  });

  it('Twilio error 21610 on a send records a withdrawal of marketing SMS, with its receipt', async () => {
    const member = await newMember(['location', 'sms_marketing']);
    await optInRequestSent(member.phone);
    standIn.failNext({ status: 400, code: 21610, message: 'Attempt to send to unsubscribed recipient' });
    const res = await checkin(member.id);
    expect(res.body.decisions[0].outcome).toBe('offer_queued');
    const d = await settled(res.body.deliveryIds[0]);
    expect(d).toMatchObject({ status: 'failed', errorCode: '21610', attempts: 1 });

    const events = await history(member.id);
    expect(events.at(-1)).toMatchObject({ purpose: 'sms_marketing', action: 'withdraw', source: 'sms_keyword', actor: 'carrier:21610' });
    const record = await call('GET', `/members/${member.id}`);
    expect(record.body.consents.sms_marketing).toMatchObject({ granted: false, pending: false });
    const receipts = await call('GET', `/members/${member.id}/receipts`);
    expect(receipts.body.receipts[0].text).toMatch(/^Nearby Offers: You withdrew consent to marketing texts on 2026-06-03 12:\d\d GMT\+8\./);

    const later = await checkin(member.id);
    expect(later.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'CONSENT_WITHDRAWN' });
    expect(offersTo(member.phone)).toEqual([]);
  });

  it('granting marketing SMS through the API asks for a YES first: a compliant request, pending, and no marketing until then', async () => {
    const phone = nextPhone();
    const m = await call('POST', '/members', { phone, timeZone: 'Asia/Shanghai' });
    await grantConsents(gw, m.body.id, phone, ['location']);
    const grant = await call('POST', `/members/${m.body.id}/consents`, { purpose: 'sms_marketing', action: 'grant', source: 'app' });
    expect(grant.status).toBe(201);
    expect(grant.body.event).toMatchObject({ purpose: 'sms_marketing', action: 'request', source: 'app' });
    expect(grant.body.consents.sms_marketing).toMatchObject({ granted: false, pending: true, requestedAt: expect.any(String) });

    const request = await optInRequestSent(phone);
    expect(sentTo(phone)).toHaveLength(1);
    for (const part of [/^Nearby Offers: /, /STOP/, /HELP/, /Up to 3 msgs\/week/, /Msg & data rates may apply\./]) {
      expect(request.body).toMatch(part);
    }
    expect(request.body).not.toMatch(/code [0-9A-Z]{13}/);

    const waiting = await checkin(m.body.id);
    expect(waiting.body.decisions[0]).toMatchObject({ outcome: 'not_sent', reasonCode: 'CONSENT_MISSING' });
    expect(waiting.body.deliveryIds).toEqual([]);

    const yes = await replySms(gw, phone, 'yes');
    expect(unescapeXml(yes.reply)).toBe(OPTED_IN);
    const confirmed = await checkin(m.body.id);
    expect(confirmed.body.decisions[0].outcome).toBe('offer_queued');
    expect(await settled(confirmed.body.deliveryIds[0])).toMatchObject({ status: 'sent' });
    expect(offersTo(phone)).toHaveLength(1);
  });

  it('a check-in without location consent is not stored, only counted', async () => {
    const drops = async () => {
      const res = await call('GET', '/admin/drops');
      return (res.body.drops as Array<{ day: string; kind: string; count: number }>)
        .find((d) => d.day === DAYTIME.slice(0, 10) && d.kind === 'checkin_no_location_consent')?.count ?? 0;
    };
    const before = await drops();
    const never = await newMember(['sms_marketing']);
    const withdrawn = await newMember(['location']);
    await call('POST', `/members/${withdrawn.id}/consents`, { purpose: 'location', action: 'withdraw', source: 'app' });

    for (const [member, reason] of [[never, 'CONSENT_MISSING'], [withdrawn, 'CONSENT_WITHDRAWN']] as const) {
      const res = await call('POST', '/checkins', { memberId: member.id, lat: 31.230417, lon: 121.473713, accuracyM: 5, at: clock().toISOString() });
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ checkinId: null, deliveryIds: [] });
      expect(res.body.decisions[0]).toMatchObject({ outcome: 'dropped', reasonCode: reason });
      expect(await count('SELECT count(*)::int n FROM checkins WHERE member_id = $1', [member.id])).toBe(0);
      expect(await count('SELECT count(*)::int n FROM member_presence WHERE member_id = $1', [member.id])).toBe(0);
      // Not even the decision keeps the position.
      expect(await count("SELECT count(*)::int n FROM decisions WHERE member_id = $1 AND trace::text LIKE '%121.4737%'", [member.id])).toBe(0);
    }
    expect(await drops()).toBe(before + 2);
  });

  it('export holds everything about the member; erasure leaves their phone number in no table, and the proof of consent stays', async () => {
    const member = await newMember(['location', 'sms_marketing']);
    await optInRequestSent(member.phone);
    const visit = await checkin(member.id);
    await settled(visit.body.deliveryIds[0]);
    const code = /code ([0-9A-Z]{13})/.exec(offersTo(member.phone)[0]!.body)![1]!;
    const { storeId } = (await gw.deps.db.query<{ storeId: string }>('SELECT id AS "storeId" FROM stores LIMIT 1'))[0]!;
    expect((await call('POST', '/redemptions', { code, storeId, tillRef: 'till-9' })).status).toBe(201);

    const exported = await call('GET', `/members/${member.id}/export`);
    expect(exported.status).toBe(200);
    expect(exported.headers['content-disposition']).toContain(`member-${member.id}.json`);
    const data = exported.body;
    expect(data.member).toMatchObject({ id: member.id, phone_e164: member.phone });
    expect(data.consent_events.map((e: { purpose: string; action: string }) => `${e.purpose}:${e.action}`)).toEqual([
      'location:grant', 'sms_marketing:request', 'sms_marketing:grant',
    ]);
    expect(data.consent_receipts).toHaveLength(3);
    expect(data.checkins).toHaveLength(1);
    expect(data.checkins[0]).toMatchObject({ lat: STORE_AT.lat, lon: STORE_AT.lon });
    expect(data.decisions.map((d: { outcome: string }) => d.outcome)).toContain('offer_queued');
    expect(data.coupons).toMatchObject([{ code }]);
    expect(data.deliveries).toMatchObject([{ status: 'sent' }]);
    expect(data.redemptions).toMatchObject([{ till_ref: 'till-9' }]);
    expect(data.inbound_sms).toMatchObject([{ keyword: 'start' }]);
    for (const { table } of MEMBER_TABLES) {
      for (const row of data[table] as Array<{ member_id: string }>) expect(row.member_id).toBe(member.id);
    }

    // Every table of the schema, each row cast to text: where does the phone number appear?
    const tables = (await gw.deps.db.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
    )).map((t) => t.name);
    const holding = async (needle: string) => {
      const hits: string[] = [];
      for (const t of tables) {
        if (await count(`SELECT count(*)::int n FROM "${t}" AS r WHERE r::text LIKE '%' || $1 || '%'`, [needle])) hits.push(t);
      }
      return hits.sort();
    };
    const forms = [member.phone, member.phone.slice(1)]; // E.164 and digits only
    expect(tables.length).toBeGreaterThan(MEMBER_TABLES.length);
    for (const form of forms) expect(await holding(form)).toEqual(['members']);
    // A table that names members but is missing from MEMBER_TABLES would escape export and this search's intent.
    const withMemberId = await gw.deps.db.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'member_id'`,
    );
    expect(withMemberId.map((t) => t.name).sort()).toEqual(MEMBER_TABLES.map((t) => t.table).sort());

    const erased = await call('POST', `/members/${member.id}/erase`);
    expect(erased.status).toBe(200);
    expect(erased.body.withdrawn.sort()).toEqual(['location', 'sms_marketing']);
    for (const form of forms) expect(await holding(form)).toEqual([]);

    const events = await history(member.id);
    expect(events.map((e) => `${e.purpose}:${e.action}:${e.source}`)).toEqual([
      'location:grant:app', 'sms_marketing:request:app', 'sms_marketing:grant:sms_keyword', 'location:withdraw:api', 'sms_marketing:withdraw:api',
    ]);
    const after = (await call('GET', `/members/${member.id}/export`)).body;
    expect(after.member).toMatchObject({ phone_e164: null, erased_at: expect.any(String) });
    expect(after.checkins).toEqual([]);
    expect(after.visits).toEqual([]);
    expect(after.member_presence).toEqual([]);
    for (const d of after.decisions as Array<{ trace: Record<string, unknown> }>) expect(Object.keys(d.trace)).not.toContain('event');
    expect(after.consent_events.every((e: { ip: string | null; user_agent: string | null }) => e.ip === null && e.user_agent === null)).toBe(true);
    // Aggregates still add up: the coupon and its redemption remain, anonymous.
    expect(after.coupons).toHaveLength(1);
    expect(after.redemptions).toHaveLength(1);
  });

  it('the retention run deletes check-ins older than RETENTION_DAYS and keeps newer ones', async () => {
    const member = await newMember(['location']);
    const day = 86_400_000;
    const ids: Record<string, string> = {};
    for (const [name, ageDays] of [['old', 31], ['recent', 29], ['now', 0]] as const) {
      const res = await checkin(member.id, new Date(clock().getTime() - ageDays * day));
      expect(res.status).toBe(202);
      ids[name] = res.body.checkinId;
    }
    const cutoff = new Date(clock().getTime() - 30 * day);
    const expired = await count('SELECT count(*)::int n FROM checkins WHERE occurred_at < $1', [cutoff]);
    expect(expired).toBeGreaterThanOrEqual(1);

    const run = await call('POST', '/admin/retention/run');
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ retentionDays: 30, checkins: expired });
    const left = await gw.deps.db.query<{ id: string }>('SELECT id FROM checkins WHERE member_id = $1 ORDER BY occurred_at', [member.id]);
    expect(left.map((r) => r.id)).toEqual([ids.recent, ids.now]);
    // The old check-in's decision stays for reporting, without it.
    const decisions = await gw.deps.db.query<{ checkin_id: string | null; reason_code: string }>(
      'SELECT checkin_id, reason_code FROM decisions WHERE member_id = $1 ORDER BY occurred_at', [member.id],
    );
    expect(decisions[0]).toEqual({ checkin_id: null, reason_code: 'STALE_EVENT' });
    expect((await call('POST', '/admin/retention/run')).body.checkins).toBe(0);
  });

  it('every consent change leaves a receipt the member can read, on their own clock', async () => {
    const member = await newMember(['location', 'sms_marketing']);
    await replySms(gw, member.phone, 'STOP');
    await replySms(gw, member.phone, 'START');
    await call('POST', `/members/${member.id}/consents`, { purpose: 'location', action: 'withdraw', source: 'app' });

    const res = await call('GET', `/members/${member.id}/receipts`);
    expect(res.status).toBe(200);
    const texts = (res.body.receipts as Array<{ text: string }>).map((r) => r.text).reverse(); // oldest first
    const at = '2026-06-03 12:\\d\\d GMT\\+8';
    const expected = [
      `You agreed to use of your location on ${at}\\. Change it anytime in your account or via help@example\\.com\\.`,
      `On ${at} you asked for marketing texts; nothing starts until you confirm\\. Reply YES to confirm\\. Reply STOP to cancel\\.`,
      `You agreed to marketing texts on ${at}\\. Reply STOP to cancel\\. Reply HELP for help\\.`,
      `You withdrew consent to marketing texts on ${at}\\. Reply START to re-join\\. Reply HELP for help\\.`,
      `You agreed to marketing texts on ${at}\\. Reply STOP to cancel\\. Reply HELP for help\\.`,
      `You withdrew consent to use of your location on ${at}\\. Change it anytime in your account or via help@example\\.com\\.`,
    ];
    expect(texts).toHaveLength(expected.length);
    texts.forEach((text, i) => expect(text).toMatch(new RegExp(`^Nearby Offers: ${expected[i]}$`)));

    // One receipt per ledger event, each naming its own event.
    const pairs = await gw.deps.db.query<{ events: number; receipts: number; mismatched: number }>(
      `SELECT (SELECT count(*)::int FROM consent_events WHERE member_id = $1) AS events,
              (SELECT count(*)::int FROM consent_receipts WHERE member_id = $1) AS receipts,
              (SELECT count(*)::int FROM consent_events e WHERE e.member_id = $1
                 AND (SELECT count(*) FROM consent_receipts r WHERE r.event_id = e.id) <> 1) AS mismatched`,
      [member.id],
    );
    expect(pairs[0]).toEqual({ events: 6, receipts: 6, mismatched: 0 });
    const unknown = await call('GET', '/members/00000000-0000-4000-8000-000000000000/receipts');
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'MEMBER_NOT_FOUND']);
  });

  it('sends no opt-in request that a STOP answered while it waited, and asks no second time once confirmed', async () => {
    const phone = nextPhone();
    const m = await call('POST', '/members', { phone, timeZone: 'Asia/Shanghai' });
    // The request job as the API queues it; run here by hand after the STOP, as a late retry would be.
    await replySms(gw, phone, 'STOP');
    const before = sentTo(phone).length;
    const granted = await call('POST', `/members/${m.body.id}/consents`, { purpose: 'sms_marketing', action: 'grant', source: 'app' });
    expect(granted.status).toBe(201);
    await optInRequestSent(phone);
    expect(sentTo(phone).length).toBe(before + 1);
    await replySms(gw, phone, 'STOP');
    await sendSystemSmsJob(gw.deps, { memberId: m.body.id, text: 'Reply YES to confirm (late retry)', onlyWhilePending: 'sms_marketing' });
    expect(sentTo(phone).filter((x) => /late retry/.test(x.body))).toEqual([]);

    // Confirmed once: granting again records nothing and texts nothing.
    await grantConsents(gw, m.body.id, phone, ['sms_marketing']);
    const sent = sentTo(phone).length;
    const ledger = await ledgerSize();
    const again = await call('POST', `/members/${m.body.id}/consents`, { purpose: 'sms_marketing', action: 'grant', source: 'app' });
    expect([again.status, again.body.event, again.body.consents.sms_marketing.granted]).toEqual([200, null, true]);
    await new Promise((r) => setTimeout(r, 200));
    expect([sentTo(phone).length, await ledgerSize()]).toEqual([sent, ledger]);
  });

  it('confirms the first STOP of a member who never subscribed, and only that one', async () => {
    const phone = nextPhone();
    const m = await call('POST', '/members', { phone, timeZone: 'Asia/Shanghai' });
    expect(m.status).toBe(201);
    const first = await replySms(gw, phone, 'STOP');
    expect(unescapeXml(first.reply)).toBe(OPT_OUT);
    expect((await smsLedger(m.body.id))).toEqual(['withdraw:sms_keyword']);
    expect((await replySms(gw, phone, 'STOP')).reply).toBeNull();
  });

  it('measures an offer\'s age on the gateway\'s own clock, wherever the database clock is', async () => {
    // A gateway whose clock runs 20 minutes ahead of the database's real one: on the gateway's clock the offer
    // is fresh; measured from the database's created_at it would look stale at once.
    const ahead = isolatedConfig(backend, { ...twilioEnv() });
    const shift = 20 * 60_000;
    const gatewayNow = () => new Date(Date.now() + shift);
    const timeZone = daytimeZone(gatewayNow());
    const early = await startGateway(ahead.config, { now: gatewayNow });
    try {
      await openStore(early);
      const member = await newMember(['location', 'sms_marketing'], timeZone, early);
      const res = await checkin(member.id, gatewayNow(), early);
      expect(res.body.decisions[0].outcome).toBe('offer_queued');
      const d = await settled(res.body.deliveryIds[0], early);
      expect([d.status, d.statusReason]).toEqual(['sent', null]);
    } finally {
      await early.close();
      await ahead.cleanup();
    }
  });
});
