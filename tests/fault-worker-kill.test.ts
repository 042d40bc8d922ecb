// Fault: a worker process SIGKILLed in the middle of a send, next to a worker that keeps running, at the
// default lock and lease settings. The send Twilio took before the worker died is recorded, never sent again,
// and the dead worker's other jobs go out from the survivor, within the recovery bound (no process restarted).
import { afterAll, describe, expect, it } from 'vitest';
import { realUrls } from './support/backends.js';
import { killAll, redisOfOwn, spawnGateway } from './support/fault-processes.js';
import { attemptsOf, openFaultWorld, tallyOffers, type FaultWorld } from './support/fault-world.js';

const real = Boolean(realUrls.databaseUrl && realUrls.redisUrl);
/** The target for recovering a crashed send at default settings, with room for a busy machine. */
const RECOVERY_BOUND_MS = 20_000;
const WORKER_ACCOUNTS = ['AC' + '1'.repeat(32), 'AC' + '2'.repeat(32)];

describe.runIf(real)('fault: a worker killed mid-send', () => {
  let world: FaultWorld | undefined;
  afterAll(async () => {
    await killAll();
    await world?.close();
  });

  it('records the held send once and sends the dead worker\'s other offers from the survivor', { timeout: 150_000 }, async () => {
    world = await openFaultWorld({ otherAccounts: WORKER_ACCOUNTS });
    const redis = await redisOfOwn();
    await redis.start();
    const env = (extra: Record<string, string>) => world!.env({ REDIS_URL: redis.url, ...extra });
    const api = await spawnGateway('api', env({ ROLE: 'api' }));
    // Each worker signs in to the stand-in with an account of its own: the message says which one sent it.
    const workers = await Promise.all(WORKER_ACCOUNTS.map((sid, i) => spawnGateway(`worker-${i + 1}`, env({ ROLE: 'worker', TWILIO_ACCOUNT_SID: sid }))));
    await Promise.all([api, ...workers].map((g) => g.ready()));
    await world.checkinCampaign(api.url);
    const members = await world.seedMembers(25);

    // The first offer's send is taken by Twilio and never answered: its worker is then killed.
    const held = world.twilio.holdNext(members[0]!.phone);
    const first = await world.checkin(() => api.url, members[0]!);
    expect(first.outcome).toBe('offer_queued');
    const message = await held.accepted;
    const victim = workers[WORKER_ACCOUNTS.indexOf(message.accountSid)]!;
    const survivor = workers.find((w) => w !== victim)!;
    // A burst behind it, some of whose jobs the victim holds when it dies.
    const burst = members.slice(1).map((m) => world!.checkin(() => api.url, m));
    await new Promise((r) => setTimeout(r, 150));
    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    const results = [first, ...await Promise.all(burst)];

    const [row] = await world.deliveries(first.deliveryIds);
    expect(row!.status).toBe('sending'); // the claim the dead worker left
    let recoveredAt = 0;
    for (let until = Date.now() + 90_000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
      const [d] = await world.db.query<{ status: string; status_reason: string | null; updated_at: Date }>('SELECT status, status_reason, updated_at FROM deliveries WHERE id = $1', [first.deliveryIds[0]]);
      if (d!.status !== 'sending') {
        expect(d).toMatchObject({ status: 'sent', status_reason: 'RECOVERED_AFTER_CRASH' });
        recoveredAt = Date.now();
        break;
      }
    }
    const tally = await tallyOffers(world, results, 30_000);
    const attempts = attemptsOf(results);
    const recoveryMs = recoveredAt ? recoveredAt - killedAt : null;
    console.log(`[fault] worker SIGKILL mid-send: held send recovered in ${recoveryMs ?? 'never (90 s)'} ms; `
      + `${tally.sentOnce}/${tally.acknowledged} offers sent once, ${tally.stale} stale, ${tally.lost.length} lost, ${tally.duplicated.length} duplicated; `
      + `last offer ${tally.lastSentAt ? tally.lastSentAt - killedAt : '-'} ms after the kill; oldest offer at send ${Math.max(0, ...tally.ageAtSend)} ms`);

    expect(survivor.alive()).toBe(true);
    expect(attempts.errors5xx).toEqual([]);
    expect(results.every((r) => r.outcome === 'offer_queued')).toBe(true);
    expect(tally.lost).toEqual([]);
    expect(tally.duplicated).toEqual([]);
    expect(tally.unacknowledged).toEqual([]);
    expect(tally.sentOnce + tally.stale).toBe(tally.acknowledged);
    expect(world.sentPerDelivery().get(first.deliveryIds[0]!)).toBe(1);
    expect(recoveryMs).not.toBeNull();
    expect(recoveryMs!).toBeLessThan(RECOVERY_BOUND_MS);
    expect(tally.lastSentAt - killedAt).toBeLessThan(RECOVERY_BOUND_MS);
  });
});
