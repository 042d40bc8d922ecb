// Detection ingest over HTTP: agents and their keys, signed uploads (forged, stale, replayed, revoked refused),
// EID resolution only for members granting ble_detection, nothing kept about anyone else, each event counted
// once, zone presence across EID rotation, visits fused with GPS, and zone triggers deciding offers.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eidHex } from '../beacon-agent/eid.js';
import { HEADER_APP_SIGNATURE } from '../beacon-agent/app-report.js';
import { appReportRequest } from '../beacon-agent/member-app-sim.js';
import { openOffer } from '../beacon-agent/offer-seal.js';
import { loadPrivateKey, signRequest } from '../beacon-agent/signing.js';
import type { PresenceEvent } from '../beacon-agent/types.js';
import { closeStaleZonePresence, ingestPresence } from '../gateway/domain/detections.js';
import { EidRegistry } from '../gateway/domain/eid-registry.js';
import { bleIdentity, startGateway, type Gateway } from './support/gateway.js';
import { backends, eventually, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';

const START = new Date('2026-06-03T16:00:00Z'); // Wednesday 12:00 in New York
const MIN = 60_000;

describe.each(backends)('detection ingest on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: Gateway;
  let clock = START;
  let seq = 0;

  const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await gw.app.inject({ method, url, payload: payload as object });
    return { status: res.statusCode, body: res.json() };
  };
  const ok = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await call(method, url, payload);
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  interface Box { agentId: string; privateKey: string; storeId: string; zoneId: string; fenceId: string; at: { lat: number; lon: number } }

  const newStore = async (): Promise<Box> => {
    const at = { lat: 41.5, lon: -70 + ++seq };
    const store = await ok('POST', '/stores', { name: `Store ${seq}`, timeZone: 'America/New_York', location: at, geofence: { radiusM: 100 } });
    const zone = await ok('POST', `/stores/${store.id}/zones`, { name: 'entrance' });
    const reg = await call('POST', '/agents', { storeId: store.id, name: `box ${seq}` });
    expect(reg.status).toBe(201);
    return { agentId: reg.body.agent.id, privateKey: reg.body.privateKey, storeId: store.id, zoneId: zone.id, fenceId: store.geofences[0].id, at };
  };

  const newMember = async (purposes: string[]) => {
    const m = await ok('POST', '/members', { phone: `+1415555${String(5000 + ++seq)}`, timeZone: 'America/New_York' });
    await grantConsents(gw, m.id, m.phone, purposes);
    return m.id as string;
  };

  const keyOf = async (memberId: string) => {
    const res = (await bleIdentity(gw, memberId)).body;
    return { key: Buffer.from(res.identityKey, 'base64'), k: res.rotationExponent as number };
  };
  const eidAt = (k: { key: Buffer; k: number }, at: Date) => eidHex(k.key, k.k, Math.floor(at.getTime() / 1000));

  const event = (box: Box, eid: string, kind: PresenceEvent['kind'], at: Date, extra: Partial<PresenceEvent> = {}): PresenceEvent => ({
    id: randomUUID(), kind, eid, zoneId: box.zoneId, at: at.toISOString(), source: 'ble_passive', confidence: 0.8, rssi: -62, ...extra,
  });

  /** Signs and sends; returns the request so a test can send the very same bytes again. */
  const upload = async (box: Box, events: PresenceEvent[], opts: { key?: string; timestamp?: number; body?: string } = {}) => {
    const body = opts.body ?? JSON.stringify({ agentId: box.agentId, batchId: randomUUID(), events });
    const headers = {
      'content-type': 'application/json',
      ...signRequest(loadPrivateKey(opts.key ?? box.privateKey), box.agentId, { method: 'POST', path: '/ingest/presence', timestamp: opts.timestamp ?? clock.getTime(), body }),
    };
    const res = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body, headers });
    return { status: res.statusCode, body: res.json(), resend: () => gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body, headers }) };
  };

  const count = async (sql: string, values: unknown[] = []) => (await gw.deps.db.query<{ n: number }>(sql, values))[0]!.n;

  beforeAll(async () => {
    iso = isolatedConfig(backend);
    gw = await startGateway(iso.config, { now: () => clock });
  });
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  it('registers a box with a key shown once, and refuses forged, stale, replayed and revoked uploads', async () => {
    clock = START;
    const box = await newStore();
    expect(box.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const agent = await ok('GET', `/agents/${box.agentId}`);
    expect(agent).toEqual({ id: box.agentId, storeId: box.storeId, name: expect.any(String), keyVersion: 1, createdAt: expect.any(String), revokedAt: null });
    expect(JSON.stringify(agent)).not.toMatch(/PRIVATE|publicKey/);

    const good = await upload(box, []);
    expect(good.status).toBe(202);
    const again = await good.resend();
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('REQUEST_REPLAYED');
    // The same signature spelt another way (no base64 padding) is not a new request either.
    const body0 = JSON.stringify({ agentId: box.agentId, batchId: 'respelt', events: [] });
    const signed0 = signRequest(loadPrivateKey(box.privateKey), box.agentId, { method: 'POST', path: '/ingest/presence', timestamp: clock.getTime() - 1, body: body0 });
    const send0 = (sig: string) => gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body0, headers: { 'content-type': 'application/json', ...signed0, 'x-agent-signature': sig } });
    expect((await send0(signed0['x-agent-signature']!)).statusCode).toBe(202);
    const respelt = await send0(signed0['x-agent-signature']!.replace(/=+$/, ''));
    expect([respelt.statusCode, respelt.json().error.code]).toEqual([403, 'SIGNATURE_INVALID']);

    const other = await newStore();
    const forged = await upload(box, [], { key: other.privateKey });
    expect([forged.status, forged.body.error.code]).toEqual([403, 'SIGNATURE_INVALID']);
    const stale = await upload(box, [], { timestamp: clock.getTime() - 6 * MIN });
    expect([stale.status, stale.body.error.code]).toEqual([401, 'REQUEST_STALE']);
    // A body swapped under a valid signature: the signature covers the body's digest.
    const body = JSON.stringify({ agentId: box.agentId, batchId: 'b', events: [] });
    const headers = { 'content-type': 'application/json', ...signRequest(loadPrivateKey(box.privateKey), box.agentId, { method: 'POST', path: '/ingest/presence', timestamp: clock.getTime(), body }) };
    const swapped = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body.replace('"b"', '"c"'), headers });
    expect(swapped.json().error.code).toBe('SIGNATURE_INVALID');
    const unsigned = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body, headers: { 'content-type': 'application/json' } });
    expect([unsigned.statusCode, unsigned.json().error.code]).toEqual([401, 'AGENT_UNKNOWN']);
    // An agent id of a uuid's length that is no uuid: unknown, not a database error.
    const garbled = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: body, headers: { ...headers, 'x-agent-id': 'a'.repeat(36) } });
    expect([garbled.statusCode, garbled.json().error.code]).toEqual([401, 'AGENT_UNKNOWN']);
    // Who sent it is checked before what it says: a forged request with a bad body is a 403, not a 400.
    const badBody = JSON.stringify({ agentId: box.agentId, batchId: 'z', events: 'none' });
    const forgedBad = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: badBody, headers: { ...headers, 'content-type': 'application/json' } });
    expect([forgedBad.statusCode, forgedBad.json().error.code]).toEqual([403, 'SIGNATURE_INVALID']);
    // Another box's agent id in the body.
    const mismatch = await upload(box, [], { body: JSON.stringify({ agentId: other.agentId, batchId: 'x', events: [] }) });
    expect([mismatch.status, mismatch.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);

    // Rotation: the new key signs at once, the old one for a grace period only.
    const rotated = await ok('POST', `/agents/${box.agentId}/rotate`);
    expect(rotated.agent.keyVersion).toBe(2);
    expect((await upload(box, [], { key: rotated.privateKey })).status).toBe(202);
    expect((await upload(box, [])).status).toBe(202);
    clock = new Date(START.getTime() + 16 * MIN);
    expect((await upload(box, [])).body.error.code).toBe('SIGNATURE_INVALID');
    expect((await upload(box, [], { key: rotated.privateKey })).status).toBe(202);

    await ok('POST', `/agents/${box.agentId}/revoke`);
    const revoked = await upload(box, [], { key: rotated.privateKey });
    expect([revoked.status, revoked.body.error.code]).toEqual([403, 'AGENT_REVOKED']);
    expect((await call('POST', `/agents/${randomUUID()}/rotate`)).body.error.code).toBe('AGENT_NOT_FOUND');
  });

  it('keeps only consenting members: unknown EIDs and withdrawn members are counted, never stored', async () => {
    clock = START;
    const box = await newStore();
    const member = await newMember(['ble_detection']);
    const key = await keyOf(member);
    const stranger = randomBytes(8).toString('hex');
    const drops = async () => (await ok('GET', '/admin/drops')).drops as Array<{ kind: string; count: number }>;
    const dropCount = async (kind: string) => (await drops()).filter((d) => d.kind === kind).reduce((a, d) => a + d.count, 0);
    const before = { unresolved: await dropCount('detection_unresolved'), noConsent: await dropCount('detection_no_ble_consent') };

    const res = await upload(box, [event(box, eidAt(key, clock), 'enter', clock), event(box, stranger, 'enter', clock)]);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ received: 2, accepted: 1, duplicates: 0, discarded: 1, rejected: [] });
    expect(await count('SELECT count(*)::int n FROM detections WHERE store_id = $1', [box.storeId])).toBe(1);
    expect(await dropCount('detection_unresolved')).toBe(before.unresolved + 1);

    // Withdrawing destroys the key: the member's phone is a stranger again, at once.
    await ok('POST', `/members/${member}/consents`, { purpose: 'ble_detection', action: 'withdraw', source: 'app' });
    expect((await bleIdentity(gw, member)).body.error?.code).toBe('CONSENT_REQUIRED');
    expect(await count('SELECT count(*)::int n FROM member_identity_keys WHERE member_id = $1', [member])).toBe(0);
    clock = new Date(START.getTime() + MIN);
    const after = await upload(box, [event(box, eidAt(key, clock), 'dwell', clock)]);
    expect(after.body).toMatchObject({ accepted: 0, discarded: 1 });
    expect(await count('SELECT count(*)::int n FROM detections WHERE member_id = $1', [member])).toBe(1);
    expect(await dropCount('detection_unresolved')).toBe(before.unresolved + 2);

    // Granting again issues a new key; the old EIDs stay unresolvable.
    await ok('POST', `/members/${member}/consents`, { purpose: 'ble_detection', action: 'grant', source: 'app' });
    const fresh = await keyOf(member);
    expect(fresh.key.equals(key.key)).toBe(false);
    const mixed = await upload(box, [event(box, eidAt(key, clock), 'dwell', clock), event(box, eidAt(fresh, clock), 'dwell', clock)]);
    expect(mixed.body).toMatchObject({ accepted: 1, discarded: 1 });
  });

  it('checks each resolution against the stored key, and the revocation, inside the upload, whatever a cache still holds', async () => {
    clock = START;
    const box = await newStore();
    const member = await newMember(['ble_detection']);
    const key = await keyOf(member);
    // A gateway's cache that has not caught up since before the withdrawal (it would, by age, only in an hour).
    const registry = new EidRegistry(3_600_000);
    await registry.sync(gw.deps.db);
    const agent = await ok('GET', `/agents/${box.agentId}`);
    const ingest = (signature: string, events: PresenceEvent[]) => ingestPresence(
      gw.deps, registry, agent, { agentId: box.agentId, signature, timestamp: clock.getTime(), method: 'POST', path: '/ingest/presence', body: '' },
      { agentId: box.agentId, batchId: randomUUID(), events },
    );
    expect((await ingest('cache-1', [event(box, eidAt(key, clock), 'enter', clock)])).accepted).toBe(1);

    await ok('POST', `/members/${member}/consents`, { purpose: 'ble_detection', action: 'withdraw', source: 'app' });
    clock = new Date(START.getTime() + MIN);
    const stale = await ingest('cache-2', [event(box, eidAt(key, clock), 'dwell', clock)]);
    expect(registry.resolve(eidAt(key, clock), clock.getTime())).toBe(member); // the cache still holds the destroyed key
    expect(stale).toMatchObject({ accepted: 0, discarded: 1 });
    expect(await count('SELECT count(*)::int n FROM detections WHERE member_id = $1', [member])).toBe(1);

    // Re-granted: a new key, which the stale cache does not know, makes it catch up; the old key still resolves nothing.
    await ok('POST', `/members/${member}/consents`, { purpose: 'ble_detection', action: 'grant', source: 'app' });
    const fresh = await keyOf(member);
    const mixed = await ingest('cache-3', [event(box, eidAt(key, clock), 'dwell', clock), event(box, eidAt(fresh, clock), 'dwell', clock)]);
    expect(mixed).toMatchObject({ accepted: 1, discarded: 1 });

    // A revocation is read inside the transaction, not from the copy of the agent the signature was checked against.
    await ok('POST', `/agents/${box.agentId}/revoke`);
    await expect(ingest('cache-4', [])).rejects.toMatchObject({ code: 'AGENT_REVOKED' });
    expect(await count('SELECT count(*)::int n FROM agent_requests WHERE signature = $1', ['cache-4'])).toBe(0);
  });

  it('counts a retried upload once, rejects events for another store, and resolves across clock drift', async () => {
    clock = START;
    const box = await newStore();
    const other = await newStore();
    const member = await newMember(['ble_detection']);
    const key = await keyOf(member);
    const events = [event(box, eidAt(key, clock), 'enter', clock), event(box, eidAt(key, clock), 'dwell', new Date(clock.getTime() + MIN))];
    const first = await upload(box, events);
    expect(first.body).toMatchObject({ accepted: 2, duplicates: 0 });
    const retry = await upload(box, events); // same events, newly signed: what an agent does after a timeout
    expect(retry.body).toMatchObject({ accepted: 0, duplicates: 2 });
    const twice = event(box, eidAt(key, clock), 'dwell', new Date(clock.getTime() + 2 * MIN));
    expect((await upload(box, [twice, twice])).body).toMatchObject({ received: 2, accepted: 1, duplicates: 1 });
    expect(await count('SELECT count(*)::int n FROM detections WHERE member_id = $1', [member])).toBe(3);

    const wrongZone = await upload(box, [{ ...event(box, eidAt(key, clock), 'dwell', clock), zoneId: other.zoneId }]);
    expect(wrongZone.body).toMatchObject({ accepted: 0, rejected: [{ index: 0, code: 'ZONE_NOT_IN_STORE' }] });
    const future = await upload(box, [event(box, eidAt(key, clock), 'dwell', new Date(clock.getTime() + 10 * MIN))]);
    expect(future.body.rejected).toEqual([{ index: 0, code: 'EVENT_IN_FUTURE' }]);

    // The phone's clock runs one window behind or ahead of the box's: still the member.
    const span = 2 ** key.k * 1000;
    const drifted = [event(box, eidAt(key, new Date(clock.getTime() - span)), 'dwell', clock), event(box, eidAt(key, new Date(clock.getTime() + span)), 'dwell', clock)];
    expect((await upload(box, drifted)).body).toMatchObject({ accepted: 2 });
    const tooFar = event(box, eidAt(key, new Date(clock.getTime() + 3 * span)), 'dwell', clock);
    expect((await upload(box, [tooFar])).body).toMatchObject({ accepted: 0, discarded: 1 });

    const bad = await gw.app.inject({ method: 'POST', url: '/ingest/presence', payload: '{"agentId":', headers: { 'content-type': 'application/json' } });
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'MALFORMED_JSON']);
  });

  it('stitches an EID rotation into one zone stay, fuses it with GPS into one visit, and fires zone triggers once', async () => {
    clock = START;
    const box = await newStore();
    await ok('POST', '/campaigns', {
      name: 'Welcome', storeId: box.storeId, trigger: { kind: 'zone_enter', zoneIds: [box.zoneId] }, sources: ['ble_zone'],
      offer: { title: 'Welcome', message: 'Welcome: code {code}' },
    });
    await ok('POST', '/campaigns', {
      name: 'Stay', storeId: box.storeId, trigger: { kind: 'zone_dwell', zoneIds: [box.zoneId], minutes: 3 }, sources: ['ble_zone'], priority: 5,
      offer: { title: 'Stay', message: 'Stay: code {code}' }, caps: { perDay: 1 },
    });
    const member = await newMember(['ble_detection', 'location', 'sms_marketing']);
    const key = await keyOf(member);

    // GPS first: the member's app checks in inside the store's geofence.
    await ok('POST', '/checkins', { memberId: member, ...box.at, accuracyM: 10, at: clock.toISOString() });
    const t = (m: number) => new Date(START.getTime() + m * MIN);
    clock = t(1);
    const entered = await upload(box, [event(box, eidAt(key, t(1)), 'enter', t(1))]);
    expect(entered.body.decisions.map((d: { trigger: string; outcome: string; reasonCode: string | null }) => [d.trigger, d.outcome, d.reasonCode]))
      .toEqual([['zone_enter', 'offer_queued', null]]);
    expect(entered.body.decisions[0].trace.consent).toEqual({ ble_detection: { allowed: true }, sms_marketing: { allowed: true } });

    // The phone's EID rotates at minute 2: the new one enters before the old one's exit arrives.
    const rotatedEid = eidAt(key, new Date(t(1).getTime() + 2 ** key.k * 1000));
    clock = t(2);
    const rotation = await upload(box, [event(box, rotatedEid, 'enter', t(2)), event(box, eidAt(key, t(1)), 'exit', t(2))]);
    expect(rotation.body).toMatchObject({ accepted: 2, decisions: [] });
    expect(await count('SELECT count(*)::int n FROM member_zone_presence WHERE member_id = $1', [member])).toBe(1);

    // Dwell crosses three minutes once: one decision (the contact limit then says no to more offers).
    clock = t(3);
    const d3 = await upload(box, [event(box, rotatedEid, 'dwell', t(3))]);
    expect(d3.body.decisions).toEqual([]);
    clock = t(4);
    const d4 = await upload(box, [event(box, rotatedEid, 'dwell', t(4))]);
    expect(d4.body.decisions.map((d: { trigger: string; reasonCode: string | null }) => [d.trigger, d.reasonCode])).toEqual([['zone_dwell', 'CONTACT_LIMIT']]);
    clock = t(5);
    expect((await upload(box, [event(box, rotatedEid, 'dwell', t(5))])).body.decisions).toEqual([]);

    // One visit, seen by GPS and BLE; BLE leaving alone does not end it while GPS still places the member there.
    const visits = () => gw.deps.db.query<{ sources: string[]; ended_at: Date | null }>('SELECT sources, ended_at FROM visits WHERE member_id = $1', [member]);
    expect(await visits()).toEqual([{ sources: ['gps', 'ble_zone'], ended_at: null }]);
    clock = t(6);
    await upload(box, [event(box, rotatedEid, 'exit', t(6))]);
    expect(await count('SELECT count(*)::int n FROM member_zone_presence WHERE member_id = $1 AND cardinality(eids) > 0', [member])).toBe(0);
    expect((await visits())[0]!.ended_at).toBeNull();
    clock = t(7);
    await ok('POST', '/checkins', { memberId: member, lat: box.at.lat + 0.01, lon: box.at.lon, accuracyM: 10, at: clock.toISOString() });
    expect((await visits()).map((v) => v.ended_at?.toISOString())).toEqual([t(7).toISOString()]);

    // Back within a few minutes by BLE: the same visit goes on, and zone_enter is decided again (caps apply).
    clock = t(9);
    const back = await upload(box, [event(box, rotatedEid, 'enter', t(9))]);
    expect(back.body.decisions.map((d: { reasonCode: string | null }) => d.reasonCode)).toEqual(['CONTACT_LIMIT']);
    expect(await visits()).toEqual([{ sources: ['gps', 'ble_zone'], ended_at: null }]);

    // A late upload (the box was offline) makes presence but decides nothing on a moment long gone.
    clock = t(40);
    const late = await upload(box, [event(box, rotatedEid, 'exit', t(10)), event(box, rotatedEid, 'enter', t(20))]);
    expect(late.body.decisions.map((d: { reasonCode: string | null }) => d.reasonCode)).toEqual(['STALE_EVENT']);

    // Erasure destroys the key and the presence.
    await ok('POST', `/members/${member}/erase`);
    expect(await count('SELECT count(*)::int n FROM member_identity_keys WHERE member_id = $1', [member])).toBe(0);
    expect(await count('SELECT count(*)::int n FROM member_zone_presence WHERE member_id = $1', [member])).toBe(0);
    expect(await count('SELECT count(*)::int n FROM detections WHERE member_id = $1', [member])).toBe(0);
    expect((await upload(box, [event(box, rotatedEid, 'dwell', t(40))])).body).toMatchObject({ accepted: 0, discarded: 1 });
  });

  it('hands over sealed offers that only the member\'s key opens, for members in the store only', async () => {
    clock = START;
    const box = await newStore();
    await ok('POST', '/campaigns', {
      name: 'Door', storeId: box.storeId, trigger: { kind: 'zone_enter', zoneIds: [box.zoneId] }, sources: ['ble_zone'],
      offer: { title: 'Door deal', message: 'Door deal: code {code}' },
    });
    const member = await newMember(['ble_detection', 'sms_marketing']);
    const key = await keyOf(member);
    const other = await keyOf(await newMember(['ble_detection']));
    const fetchOffers = async () => {
      clock = new Date(clock.getTime() + 1000); // a box polls now and then; the same signed request twice is a replay
      const headers = signRequest(loadPrivateKey(box.privateKey), box.agentId, { method: 'GET', path: '/ingest/offers', timestamp: clock.getTime(), body: '' });
      const res = await gw.app.inject({ method: 'GET', url: '/ingest/offers', headers });
      expect(res.statusCode).toBe(200);
      return res.json().offers as Array<{ eids: string[]; sealed: string }>;
    };
    expect(await fetchOffers()).toEqual([]);
    const entered = await upload(box, [event(box, eidAt(key, clock), 'enter', clock)]);
    expect(entered.body.decisions[0].outcome).toBe('offer_queued');
    const [code] = (await gw.deps.db.query<{ code: string }>('SELECT code FROM coupons WHERE member_id = $1', [member])).map((r) => r.code);
    // Only an offer the member already received by SMS is handed over.
    await eventually(async () => ((await count(`SELECT count(*)::int n FROM deliveries WHERE member_id = $1 AND status = 'sent'`, [member])) === 1 ? true : undefined));

    const offers = await fetchOffers();
    expect(offers).toHaveLength(1);
    expect(offers[0]!.eids).toContain(eidAt(key, clock));
    const sealed = Buffer.from(offers[0]!.sealed, 'base64');
    expect(sealed.toString('latin1')).not.toContain(code!);
    expect(openOffer(key.key, sealed)).toMatchObject({ couponCode: code, title: 'Door deal', message: `Door deal: code ${code}` });
    expect(openOffer(other.key, sealed)).toBeNull();

    // Redeemed, or the member left: nothing more to hand over.
    clock = new Date(START.getTime() + MIN);
    await ok('POST', '/redemptions', { code, storeId: box.storeId, tillRef: 'till-1' });
    expect(await fetchOffers()).toEqual([]);
  });

  it("hands over a partner's alliance coupon with the partner's own title and text", async () => {
    clock = START;
    const box = await newStore();
    const partner = await ok('POST', '/merchants', { kind: 'partner', name: 'Bakery next door' });
    await ok('POST', '/stores', { merchantId: partner.id, name: 'Bakery', timeZone: 'America/New_York', location: { lat: box.at.lat + 0.001, lon: box.at.lon } });
    const offer = await ok('POST', '/alliance-offers', {
      merchantId: partner.id, title: 'Bakery treat', message: 'A free roll with code {code}', faceValue: 1.5,
      validFrom: new Date(START.getTime() - 86_400_000).toISOString(), validTo: new Date(START.getTime() + 30 * 86_400_000).toISOString(),
    });
    await ok('POST', '/campaigns', {
      name: 'Neighbours', storeId: box.storeId, trigger: { kind: 'zone_enter', zoneIds: [box.zoneId] }, sources: ['ble_zone'],
      alliance: { offerIds: [offer.id], near: 'store', withinM: 500 }, offer: { title: 'Neighbours', message: 'Neighbours {code}' },
    });
    const member = await newMember(['ble_detection', 'sms_marketing', 'partner_offers']);
    const key = await keyOf(member);
    const entered = await upload(box, [event(box, eidAt(key, clock), 'enter', clock)]);
    expect(entered.body.decisions[0].outcome).toBe('offer_queued');
    const [code] = (await gw.deps.db.query<{ code: string }>('SELECT code FROM coupons WHERE member_id = $1 AND alliance_offer_id = $2', [member, offer.id])).map((r) => r.code);
    await eventually(async () => ((await count(`SELECT count(*)::int n FROM deliveries WHERE member_id = $1 AND status = 'sent'`, [member])) === 1 ? true : undefined));
    clock = new Date(clock.getTime() + 1000);
    const headers = signRequest(loadPrivateKey(box.privateKey), box.agentId, { method: 'GET', path: '/ingest/offers', timestamp: clock.getTime(), body: '' });
    const offers = (await gw.app.inject({ method: 'GET', url: '/ingest/offers', headers })).json().offers as Array<{ sealed: string }>;
    expect(offers).toHaveLength(1);
    expect(openOffer(key.key, Buffer.from(offers[0]!.sealed, 'base64'))).toMatchObject({ couponCode: code, title: 'Bakery treat', message: `A free roll with code ${code}` });
  });

  it('hands over nothing once the member withdrew marketing consent', async () => {
    clock = START;
    const box = await newStore();
    await ok('POST', '/campaigns', {
      name: 'Door 2', storeId: box.storeId, trigger: { kind: 'zone_enter', zoneIds: [box.zoneId] }, sources: ['ble_zone'],
      offer: { title: 'Door 2', message: 'Door 2: code {code}' },
    });
    const member = await newMember(['ble_detection', 'sms_marketing']);
    const key = await keyOf(member);
    await upload(box, [event(box, eidAt(key, clock), 'enter', clock)]);
    await eventually(async () => ((await count(`SELECT count(*)::int n FROM deliveries WHERE member_id = $1 AND status = 'sent'`, [member])) === 1 ? true : undefined));
    const poll = async () => {
      clock = new Date(clock.getTime() + 1000);
      const headers = signRequest(loadPrivateKey(box.privateKey), box.agentId, { method: 'GET', path: '/ingest/offers', timestamp: clock.getTime(), body: '' });
      return (await gw.app.inject({ method: 'GET', url: '/ingest/offers', headers })).json().offers as unknown[];
    };
    expect(await poll()).toHaveLength(1);
    await ok('POST', `/members/${member}/consents`, { purpose: 'sms_marketing', action: 'withdraw', source: 'app' });
    expect(await poll()).toEqual([]);
    // Withdrawing ble_detection ends the zone stay at once.
    await ok('POST', `/members/${member}/consents`, { purpose: 'ble_detection', action: 'withdraw', source: 'app' });
    expect(await count('SELECT count(*)::int n FROM member_zone_presence WHERE member_id = $1', [member])).toBe(0);
    expect((await gw.deps.db.query<{ ended_at: Date | null }>('SELECT ended_at FROM visits WHERE member_id = $1', [member]))[0]!.ended_at).not.toBeNull();
  });

  it('ends a zone stay nobody reported on for an hour, at the moment it was last heard of', async () => {
    clock = START;
    const box = await newStore();
    const member = await newMember(['ble_detection']);
    const key = await keyOf(member);
    const t = (m: number) => new Date(START.getTime() + m * MIN);
    await upload(box, [event(box, eidAt(key, t(0)), 'enter', t(0))]);
    // The box restarted and lost track: an hour later the member is heard again, as a new stay.
    clock = t(70);
    await upload(box, [event(box, eidAt(key, t(70)), 'enter', t(70))]);
    const visits = () => gw.deps.db.query<{ started_at: Date; ended_at: Date | null }>('SELECT started_at, ended_at FROM visits WHERE member_id = $1 ORDER BY started_at', [member]);
    expect((await visits()).map((v) => [v.started_at.toISOString(), v.ended_at?.toISOString() ?? null]))
      .toEqual([[t(0).toISOString(), t(0).toISOString()], [t(70).toISOString(), null]]);
    // And the hourly sweep ends a stay that simply went quiet.
    clock = t(131);
    expect(await closeStaleZonePresence(gw.deps.db, clock)).toBeGreaterThanOrEqual(1);
    expect(await count('SELECT count(*)::int n FROM member_zone_presence WHERE member_id = $1', [member])).toBe(0);
    expect((await visits()).map((v) => v.ended_at?.toISOString() ?? null)).toEqual([t(0).toISOString(), t(70).toISOString()]);
  });

  it('takes beacon reports from the member\'s own app as the third path, into the same zone stay and visit', async () => {
    clock = START;
    const box = await newStore();
    const beacon = { uuid: 'f7826da6-4fa2-4e98-8024-bc5b71e0893e', major: 100 + seq, minor: 7 };
    const added = await call('POST', `/stores/${box.storeId}/beacons`, { ...beacon, zoneId: box.zoneId });
    expect(added.status).toBe(201);
    expect((await call('POST', `/stores/${box.storeId}/beacons`, { ...beacon, zoneId: box.zoneId })).body.error.code).toBe('BEACON_TAKEN');
    await ok('POST', '/campaigns', {
      name: 'App door', storeId: box.storeId, trigger: { kind: 'zone_enter', zoneIds: [box.zoneId] }, sources: ['app_beacon'],
      offer: { title: 'App door', message: 'App door: code {code}' },
    });
    const member = await newMember(['ble_detection', 'sms_marketing']);
    const key = await keyOf(member);
    const app = { identityKey: key.key, k: key.k };
    const report = (kind: 'enter' | 'dwell' | 'exit', at: Date, b = beacon) => ({ id: randomUUID(), kind, beacon: b, at: at.toISOString(), rssi: -71 });
    const send = async (reports: ReturnType<typeof report>[], opts: { key?: Buffer; as?: string; timestamp?: number } = {}) => {
      const r = appReportRequest({ identityKey: opts.key ?? app.identityKey, k: app.k }, opts.as ?? member, reports, opts.timestamp ?? clock.getTime());
      const res = await gw.app.inject({ method: 'POST', url: r.path, payload: r.body, headers: r.headers });
      return { status: res.statusCode, body: res.json(), resend: () => gw.app.inject({ method: 'POST', url: r.path, payload: r.body, headers: r.headers }) };
    };

    const enterReports = [report('enter', clock), report('enter', clock, { ...beacon, minor: 9999 })];
    const entered = await send(enterReports);
    expect(entered.status).toBe(202);
    expect(entered.body).toMatchObject({ received: 2, accepted: 1, rejected: [{ index: 1, code: 'UNKNOWN_BEACON' }] });
    expect(entered.body.decisions.map((d: { trigger: string; outcome: string }) => [d.trigger, d.outcome])).toEqual([['zone_enter', 'offer_queued']]);
    expect(entered.body.decisions[0].trace.event.source).toBe('app_beacon');
    // The very same signed request again is a replay, refused as for the boxes; a retry is signed anew and counts once.
    const replay = await entered.resend();
    expect([replay.statusCode, replay.json().error.code]).toEqual([409, 'REQUEST_REPLAYED']);
    expect((await send(enterReports, { timestamp: clock.getTime() + 1 })).body).toMatchObject({ accepted: 0, duplicates: 1 });

    // The box hears the same phone: still one zone stay (two paths in it), one visit, one zone_enter decision.
    clock = new Date(START.getTime() + MIN);
    await upload(box, [event(box, eidAt(key, clock), 'enter', clock)]);
    const [presence] = await gw.deps.db.query<{ eids: string[] }>('SELECT eids FROM member_zone_presence WHERE member_id = $1', [member]);
    expect(presence!.eids).toHaveLength(2);
    // The visit was started by the app's report; the box's sighting joined the stay, not a new one.
    expect(await gw.deps.db.query('SELECT sources, ended_at FROM visits WHERE member_id = $1', [member])).toEqual([{ sources: ['app_beacon'], ended_at: null }]);
    const zoneDecisions = await gw.deps.db.query<{ n: number }>(`SELECT count(*)::int n FROM decisions WHERE member_id = $1 AND trigger = 'zone_enter'`, [member]);
    expect(zoneDecisions[0]!.n).toBe(1);

    // Signed with anything but the member's key, or for another member: refused, nothing kept.
    const before = await count('SELECT count(*)::int n FROM detections WHERE member_id = $1', [member]);
    const forged = await send([report('dwell', clock)], { key: randomBytes(16) });
    expect([forged.status, forged.body.error.code]).toEqual([403, 'SIGNATURE_INVALID']);
    const other = await newMember(['ble_detection']);
    expect((await send([report('dwell', clock)], { as: other })).body.error.code).toBe('SIGNATURE_INVALID');
    const unsigned = await gw.app.inject({ method: 'POST', url: `/members/${member}/beacon-reports`, payload: { reports: [] } });
    expect([unsigned.statusCode, unsigned.json().error.code]).toEqual([403, 'SIGNATURE_INVALID']);
    // Without ble_detection the app has no key to sign with, and reports are refused outright.
    await ok('POST', `/members/${member}/consents`, { purpose: 'ble_detection', action: 'withdraw', source: 'app' });
    const withdrawn = await send([report('dwell', clock)]);
    expect([withdrawn.status, withdrawn.body.error.code]).toEqual([403, 'SIGNATURE_INVALID']);
    expect(await count('SELECT count(*)::int n FROM detections WHERE member_id = $1', [member])).toBe(before);
  });

  it("takes an app report's signature only in its canonical base64 spelling, and the same signed report once", async () => {
    clock = START;
    const box = await newStore();
    const beacon = { uuid: 'f7826da6-4fa2-4e98-8024-bc5b71e0893e', major: 100 + seq, minor: 8 };
    expect((await call('POST', `/stores/${box.storeId}/beacons`, { ...beacon, zoneId: box.zoneId })).status).toBe(201);
    const member = await newMember(['ble_detection']);
    const key = await keyOf(member);
    const reports = [{ id: randomUUID(), kind: 'enter' as const, beacon, at: clock.toISOString(), rssi: -70 }];
    // A moment whose signature holds a '+' or '/', so that its base64url spelling differs from it.
    let r = appReportRequest({ identityKey: key.key, k: key.k }, member, reports, clock.getTime());
    for (let t = clock.getTime() - 1; !/[+/]/.test(r.headers[HEADER_APP_SIGNATURE]); t--) {
      r = appReportRequest({ identityKey: key.key, k: key.k }, member, reports, t);
    }
    const signature = r.headers[HEADER_APP_SIGNATURE];
    const post = (spelled: string) =>
      gw.app.inject({ method: 'POST', url: r.path, payload: r.body, headers: { ...r.headers, [HEADER_APP_SIGNATURE]: spelled } });
    const spellings: Array<[string, string]> = [
      ['without padding', signature.replace(/=+$/, '')],
      ['in base64url', signature.replace(/\+/g, '-').replace(/\//g, '_')],
      ['in base64url without padding', signature.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')],
      ['with trailing junk', `${signature}AA`],
      ['with more padding', `${signature}=`],
    ];
    for (const [what, spelled] of spellings) {
      expect(Buffer.from(spelled, 'base64').equals(Buffer.from(signature, 'base64'))).toBe(true);
      const res = await post(spelled);
      expect({ what, status: res.statusCode, code: res.json().error?.code }).toEqual({ what, status: 403, code: 'SIGNATURE_INVALID' });
    }
    expect((await post(signature)).statusCode).toBe(202);
    const again = await post(signature);
    expect([again.statusCode, again.json().error.code]).toEqual([409, 'REQUEST_REPLAYED']);
    expect(await count('SELECT count(*)::int n FROM detections WHERE member_id = $1', [member])).toBe(1);
  });

  it('resumes a zone stay when a rotated EID enters just after the old one left, deciding no second entry', async () => {
    clock = START;
    const box = await newStore();
    await ok('POST', '/campaigns', {
      name: 'Door 3', storeId: box.storeId, trigger: { kind: 'zone_enter', zoneIds: [box.zoneId] }, sources: ['ble_zone'],
      offer: { title: 'Door 3', message: 'Door 3: code {code}' },
    });
    const member = await newMember(['ble_detection']);
    const key = await keyOf(member);
    const t = (s: number) => new Date(START.getTime() + s * 1000);
    const oldEid = eidAt(key, t(0));
    const newEid = eidAt(key, new Date(START.getTime() + 2 ** key.k * 1000));
    const first = await upload(box, [event(box, oldEid, 'enter', t(0))]);
    expect(first.body.decisions.map((d: { trigger: string }) => d.trigger)).toEqual(['zone_enter']);
    clock = t(60);
    // The box reports the old EID gone 30 s before it has held the new one long enough to call it inside.
    const rotated = await upload(box, [event(box, oldEid, 'exit', t(30)), event(box, newEid, 'enter', t(60))]);
    expect(rotated.body.decisions).toEqual([]);
    const [stay] = await gw.deps.db.query<{ eids: string[]; entered_at: Date }>('SELECT eids, entered_at FROM member_zone_presence WHERE member_id = $1', [member]);
    expect(stay).toEqual({ eids: [newEid], entered_at: t(0) });
    expect(await count('SELECT count(*)::int n FROM visits WHERE member_id = $1 AND ended_at IS NULL', [member])).toBe(1);
    // Gone for longer than the resume window: the next entry is a new stay, decided again.
    clock = t(400);
    const later = await upload(box, [event(box, newEid, 'exit', t(120)), event(box, newEid, 'enter', t(400))]);
    expect(later.body.decisions.map((d: { trigger: string }) => d.trigger)).toEqual(['zone_enter']);
  });
});
