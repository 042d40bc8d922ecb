// Campaigns through the API: every kind defined, bad ones refused at their exact path, versions, status
// changes, and check-ins triggering exactly the offers the rules say, with decisions that explain themselves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from './support/gateway.js';
import { backends, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';

const START = new Date('2026-06-03T16:00:00Z'); // Wednesday 12:00 in New York
const MIN = 60_000;

describe.each(backends)('campaigns on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: Gateway;
  let clock = START;
  let phoneSeq = 0;
  let storeSeq = 0;

  const call = async (method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, payload?: unknown) => {
    const res = await gw.app.inject({ method, url, payload: payload as object });
    return { status: res.statusCode, body: res.json() };
  };
  const ok = async (method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, payload?: unknown) => {
    const res = await call(method, url, payload);
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  /** A store of its own, one degree of longitude from the others, so that only its campaigns match there. */
  const newStore = async () => {
    const location = { lat: 40.7, lon: -74 + ++storeSeq };
    const store = await ok('POST', '/stores', { name: `Store ${storeSeq}`, timeZone: 'America/New_York', location, geofence: { radiusM: 100 } });
    return { id: store.id as string, fenceId: store.geofences[0].id as string, inside: location, outside: { lat: location.lat + 0.02, lon: location.lon } };
  };

  const newMember = async (extra: object = {}) => {
    const m = await ok('POST', '/members', { phone: `+1415555${String(3000 + ++phoneSeq)}`, timeZone: 'America/New_York', ...extra });
    await grantConsents(gw, m.id, m.phone, ['location', 'sms_marketing']);
    return m.id as string;
  };

  const checkin = (memberId: string, at: { lat: number; lon: number }, accuracyM = 10) =>
    ok('POST', '/checkins', { memberId, ...at, accuracyM, at: clock.toISOString() });

  const offer = (title: string) => ({ title, message: `${title}: code {code}` });
  const counts = async () =>
    Object.fromEntries(
      (await gw.deps.db.query<{ t: string; n: number }>(
        `SELECT 'campaigns' t, count(*)::int n FROM campaigns UNION ALL SELECT 'versions', count(*)::int FROM campaign_versions
         UNION ALL SELECT 'offers', count(*)::int FROM offers UNION ALL SELECT 'geofences', count(*)::int FROM geofences`,
      )).map((r) => [r.t, r.n]),
    );

  beforeAll(async () => {
    iso = isolatedConfig(backend);
    gw = await startGateway(iso.config, { now: () => clock });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  it('defines every kind of campaign: check-in, enter, exit, dwell, pass-by, zone enter and dwell, on circles and polygons', async () => {
    const store = await newStore();
    const zone = await ok('POST', `/stores/${store.id}/zones`, { name: 'entrance' });
    const s = 0.001;
    const { lat, lon } = store.inside;
    const polygon = await ok('POST', '/geofences', {
      name: 'car park', storeId: store.id,
      shape: { kind: 'polygon', coordinates: [[[lon - s, lat - s], [lon + s, lat - s], [lon + s, lat + s], [lon - s, lat + s], [lon - s, lat - s]]] },
      hours: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '22:00' }],
    });
    expect(polygon).toMatchObject({ timeZone: 'America/New_York', shape: { kind: 'polygon' } });
    const triggers = [
      { kind: 'checkin' }, { kind: 'geofence_enter' }, { kind: 'geofence_exit' }, { kind: 'geofence_dwell', minutes: 10 },
      { kind: 'pass_by', withinMinutes: 5 }, { kind: 'zone_enter', zoneIds: [zone.id] }, { kind: 'zone_dwell', zoneIds: [zone.id], minutes: 3 },
    ];
    for (const trigger of triggers) {
      const c = await call('POST', '/campaigns', {
        name: trigger.kind, storeId: store.id, geofenceIds: [polygon.id], trigger, offer: offer(trigger.kind),
        schedule: { weekly: [{ days: ['sat', 'sun'], from: '09:00', to: '18:00' }] },
        audience: { tagsAny: ['coffee'] }, caps: { perDay: 1, lifetime: 5 }, budget: { maxCoupons: 1000 }, holdoutPercent: 10,
      });
      expect(c.status).toBe(201);
      expect(c.body).toMatchObject({ status: 'active', version: 1, definition: { trigger, schedule: { timeZone: 'America/New_York' } } });
      expect(c.body.definition.sources).toEqual(trigger.kind.startsWith('zone') ? ['ble_zone', 'app_beacon'] : ['gps']);
      await ok('POST', `/campaigns/${c.body.id}/archive`); // keep the other tests' stores quiet
    }
  });

  it('refuses bad campaigns and geofences with the exact path of the bad field, storing nothing', async () => {
    const store = await newStore();
    const before = await counts();
    const base = { name: 'x', storeId: store.id, trigger: { kind: 'checkin' }, offer: offer('x') };
    const ring = (pts: number[][]) => ({ name: 'g', shape: { kind: 'polygon', coordinates: [pts] } });
    const cases: Array<[string, string, unknown, number, string]> = [
      ['bow-tie polygon', '/geofences', ring([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]), 400, 'body/shape/coordinates/0'],
      ['unclosed polygon', '/geofences', ring([[0, 0], [1, 0], [1, 1], [0, 1]]), 400, 'body/shape/coordinates/0'],
      ['radius 0', '/geofences', { name: 'g', shape: { kind: 'circle', center: { lat: 0, lon: 0 }, radiusM: 0 } }, 400, 'body/shape/radiusM'],
      ['radius 60 km', '/geofences', { name: 'g', shape: { kind: 'circle', center: { lat: 0, lon: 0 }, radiusM: 60_000 } }, 400, 'body/shape/radiusM'],
      ['latitude 91', '/geofences', { name: 'g', shape: { kind: 'circle', center: { lat: 91, lon: 0 }, radiusM: 50 } }, 400, 'body/shape/center/lat'],
      ['hours without a zone', '/geofences', { name: 'g', shape: { kind: 'circle', center: { lat: 1, lon: 1 }, radiusM: 50 }, hours: [{ days: ['mon'], from: '09:00', to: '17:00' }] }, 400, 'body/timeZone'],
      ['unknown time zone', '/campaigns', { ...base, schedule: { timeZone: 'Mars/Olympus' } }, 400, 'body/schedule/timeZone'],
      ['empty schedule', '/campaigns', { ...base, schedule: { weekly: [] } }, 400, 'body/schedule/weekly'],
      ['hour 25', '/campaigns', { ...base, schedule: { weekly: [{ days: ['mon'], from: '25:00', to: '26:00' }] } }, 400, 'body/schedule/weekly/0/from'],
      ['no days', '/campaigns', { ...base, schedule: { weekly: [{ days: [], from: '09:00', to: '10:00' }] } }, 400, 'body/schedule/weekly/0/days'],
      ['end before start', '/campaigns', { ...base, schedule: { startsAt: '2026-07-01T00:00:00Z', endsAt: '2026-06-01T00:00:00Z' } }, 400, 'body/schedule/endsAt'],
      ['unknown field', '/campaigns', { ...base, colour: 'red' }, 400, 'body/colour'],
      ['cap of 0', '/campaigns', { ...base, caps: { perDay: 0 } }, 400, 'body/caps/perDay'],
      ['budget of 0', '/campaigns', { ...base, budget: { maxCoupons: 0 } }, 400, 'body/budget/maxCoupons'],
      ['holdout 80 %', '/campaigns', { ...base, holdoutPercent: 80 }, 400, 'body/holdoutPercent'],
      ['min above max', '/campaigns', { ...base, audience: { minVisits: 5, maxVisits: 2 } }, 400, 'body/audience/maxVisits'],
      ['missing geofence', '/campaigns', { ...base, storeId: undefined, geofenceIds: ['00000000-0000-4000-8000-000000000000'] }, 400, 'body/geofenceIds/0'],
      ['no place', '/campaigns', { ...base, storeId: undefined }, 400, 'body/geofenceIds'],
      ['missing zone', '/campaigns', { ...base, trigger: { kind: 'zone_enter', zoneIds: ['00000000-0000-4000-8000-000000000000'] } }, 400, 'body/trigger/zoneIds/0'],
      ['dry run of a bad one', '/campaigns/validate', { ...base, schedule: { timeZone: 'Nowhere/City' } }, 400, 'body/schedule/timeZone'],
    ];
    for (const [name, url, payload, status, field] of cases) {
      const res = await call('POST', url, payload);
      const fields = (res.body.error?.details?.issues ?? []).map((i: { field: string }) => i.field);
      expect({ name, status: res.status, code: res.body.error?.code, first: fields[0] }).toEqual({ name, status, code: 'VALIDATION_FAILED', first: field });
      expect(res.body.error.message.startsWith(field)).toBe(true);
    }
    const dry = await call('POST', '/campaigns/validate', base);
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ valid: true, definition: { geofenceIds: [store.fenceId], maxAccuracyM: 50, channels: ['sms'] } });
    expect(await counts()).toEqual(before);
  });

  it('versions every edit, and pauses, resumes and archives', async () => {
    const store = await newStore();
    const created = await ok('POST', '/campaigns', { name: 'v', storeId: store.id, trigger: { kind: 'checkin' }, offer: offer('First') });
    const m1 = await newMember();
    const d1 = (await checkin(m1, store.inside)).decisions[0];
    expect(d1).toMatchObject({ outcome: 'offer_queued', campaignId: created.id, campaignVersion: 1 });

    const edited = await ok('PUT', `/campaigns/${created.id}`, { name: 'v2', storeId: store.id, trigger: { kind: 'checkin' }, offer: offer('Second') });
    expect(edited).toMatchObject({ version: 2, name: 'v2', offer: { title: 'Second' } });
    const m2 = await newMember();
    expect((await checkin(m2, store.inside)).decisions[0]).toMatchObject({ outcome: 'offer_queued', campaignVersion: 2 });
    const record = await ok('GET', `/members/${m1}`);
    expect(record.offers[0].title).toBe('First'); // coupons keep the offer of the version that issued them

    const full = await ok('GET', `/campaigns/${created.id}`);
    expect(full.versions.map((v: { version: number; offer: { title: string } }) => [v.version, v.offer.title])).toEqual([[1, 'First'], [2, 'Second']]);

    await ok('POST', `/campaigns/${created.id}/pause`);
    const m3 = await newMember();
    expect((await checkin(m3, store.inside)).decisions[0]).toMatchObject({ outcome: 'no_match', reasonCode: 'NO_CAMPAIGN_MATCHED' });
    expect((await call('POST', `/campaigns/${created.id}/pause`)).body.error.code).toBe('CAMPAIGN_STATE_CONFLICT');
    await ok('POST', `/campaigns/${created.id}/resume`);
    clock = new Date(clock.getTime() + 5 * MIN);
    const m4 = await newMember();
    expect((await checkin(m4, store.inside)).decisions[0].outcome).toBe('offer_queued');
    await ok('POST', `/campaigns/${created.id}/archive`);
    expect((await call('POST', `/campaigns/${created.id}/resume`)).status).toBe(409);
    expect((await call('PUT', `/campaigns/${created.id}`, { name: 'v3', storeId: store.id, trigger: { kind: 'checkin' }, offer: offer('x') })).status).toBe(409);
    const archived = await ok('GET', `/campaigns?status=archived&storeId=${store.id}`);
    expect(archived.campaigns.map((c: { id: string }) => c.id)).toEqual([created.id]);
  });

  it('turns fixes into enter, dwell, exit and pass-by offers, each exactly when the rules say', async () => {
    const kinds = [
      { kind: 'geofence_enter' }, { kind: 'geofence_dwell', minutes: 10 }, { kind: 'geofence_exit' }, { kind: 'pass_by', withinMinutes: 5 },
    ] as const;
    const stores: Record<string, Awaited<ReturnType<typeof newStore>>> = {};
    for (const trigger of kinds) {
      stores[trigger.kind] = await newStore();
      await ok('POST', '/campaigns', { name: trigger.kind, storeId: stores[trigger.kind]!.id, trigger, offer: offer(trigger.kind) });
    }
    const kindsOf = (r: { decisions: Array<{ trigger: string; outcome: string }> }) => r.decisions.map((d) => `${d.trigger}:${d.outcome}`);
    const t0 = clock.getTime();
    const at = (min: number) => (clock = new Date(t0 + min * MIN));

    // Enter: outside, then inside.
    const enter = stores.geofence_enter!;
    const a = await newMember();
    at(0);
    expect(kindsOf(await checkin(a, enter.outside))).toEqual(['checkin:no_match']);
    at(1);
    expect(kindsOf(await checkin(a, enter.inside))).toEqual(['checkin:no_match', 'geofence_enter:offer_queued']);
    at(2);
    expect(kindsOf(await checkin(a, enter.inside))).toEqual(['checkin:no_match']); // still inside: no second enter

    // Dwell: the offer comes with the first fix at least 10 minutes after entering, once.
    const dwell = stores.geofence_dwell!;
    const b = await newMember();
    at(0);
    await checkin(b, dwell.inside);
    at(6);
    expect(kindsOf(await checkin(b, dwell.inside))).toEqual(['checkin:no_match']);
    at(11);
    const dwelled = await checkin(b, dwell.inside);
    expect(kindsOf(dwelled)).toEqual(['checkin:no_match', 'geofence_dwell:offer_queued']);
    expect(dwelled.decisions[1].trace.event.minutes).toBeGreaterThanOrEqual(10);
    at(16);
    expect(kindsOf(await checkin(b, dwell.inside))).toEqual(['checkin:no_match']);

    // Exit: a wobble just past the edge within the fix's accuracy is not an exit; a clear move away is.
    const exit = stores.geofence_exit!;
    const c = await newMember();
    at(0);
    await checkin(c, exit.inside);
    at(3);
    const wobble = { lat: exit.inside.lat + 0.001, lon: exit.inside.lon }; // about 111 m: 11 m past a 100 m edge
    expect(kindsOf(await checkin(c, wobble, 30))).toEqual(['checkin:no_match']);
    at(20);
    expect(kindsOf(await checkin(c, exit.outside))).toEqual(['checkin:no_match', 'geofence_exit:offer_queued']);

    // Pass-by: in and out within 5 minutes without dwelling.
    const pass = stores.pass_by!;
    const d = await newMember();
    at(0);
    await checkin(d, pass.outside);
    at(1);
    await checkin(d, pass.inside);
    at(4);
    const passed = await checkin(d, pass.outside);
    expect(kindsOf(passed)).toEqual(['checkin:no_match', 'pass_by:offer_queued']);
    expect(passed.decisions[1].trace.event.minutes).toBe(3);
    // A stay of 8 minutes is no pass-by.
    const e = await newMember();
    at(0);
    await checkin(e, pass.inside);
    at(8);
    expect(kindsOf(await checkin(e, pass.outside))).toEqual(['checkin:no_match']);
  });

  it('keeps a stable control group, enforces the budget, audiences and caps, and explains every no', async () => {
    const store = await newStore();
    const held = await ok('POST', '/campaigns', { name: 'held', storeId: store.id, trigger: { kind: 'checkin' }, offer: offer('Held'), holdoutPercent: 50 });
    const outcomes: Record<string, string> = {};
    for (let i = 0; i < 16; i++) {
      const m = await newMember();
      outcomes[m] = (await checkin(m, store.inside)).decisions[0].outcome;
    }
    const heldOut = Object.entries(outcomes).filter(([, o]) => o === 'held_out').map(([m]) => m);
    expect(heldOut.length).toBeGreaterThan(0);
    expect(heldOut.length).toBeLessThan(16);
    for (const m of heldOut) expect((await ok('GET', `/members/${m}`)).offers).toEqual([]);
    // The same members land in the same group next time (after the 4-hour contact limit).
    clock = new Date(clock.getTime() + 5 * 60 * MIN);
    for (const [m, o] of Object.entries(outcomes).slice(0, 6)) expect((await checkin(m, store.inside)).decisions[0].outcome).toBe(o);
    await ok('POST', `/campaigns/${held.id}/archive`);

    const budgeted = await newStore();
    await ok('POST', '/campaigns', { name: 'budget', storeId: budgeted.id, trigger: { kind: 'checkin' }, offer: offer('B'), budget: { maxCoupons: 2 } });
    const results: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await checkin(await newMember(), budgeted.inside);
      results.push(`${r.decisions[0].outcome}:${r.decisions[0].reasonCode}`);
    }
    expect(results).toEqual(['offer_queued:null', 'offer_queued:null', 'no_match:BUDGET_EXHAUSTED', 'no_match:BUDGET_EXHAUSTED']);

    const tagged = await newStore();
    await ok('POST', '/campaigns', { name: 'vip', storeId: tagged.id, trigger: { kind: 'checkin' }, offer: offer('V'), audience: { tagsAny: ['vip'] } });
    const plain = await newMember();
    const vip = await newMember({ tags: ['vip'] });
    const no = (await checkin(plain, tagged.inside)).decisions[0];
    expect(no).toMatchObject({ outcome: 'no_match', reasonCode: 'AUDIENCE' });
    expect(no.trace.evaluation.candidates[0].failed).toEqual({ condition: 'audience', rule: 'tagsAny', expected: ['vip'], actual: [] });
    expect((await checkin(vip, tagged.inside)).decisions[0].outcome).toBe('offer_queued');
    await ok('PATCH', `/members/${plain}`, { tags: ['vip'] });
    clock = new Date(clock.getTime() + MIN);
    expect((await checkin(plain, tagged.inside)).decisions[0].outcome).toBe('offer_queued');

    // The global contact limit: one offer per 4 hours, whatever the campaign.
    clock = new Date(clock.getTime() + MIN);
    const again = (await checkin(vip, tagged.inside)).decisions[0];
    expect(again).toMatchObject({ outcome: 'no_match', reasonCode: 'CONTACT_LIMIT' });

    // "Why?" for a member around a moment.
    const from = new Date(clock.getTime() - MIN / 2).toISOString();
    const why = await ok('GET', `/members/${vip}/decisions?from=${from}&to=${clock.toISOString()}`);
    expect(why.decisions).toHaveLength(1);
    expect(why.decisions[0].trace.evaluation.candidates[0].failed).toMatchObject({ condition: 'contact_limit', count: 1, hours: 4 });
  });
});
