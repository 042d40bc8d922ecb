// Fault: a gateway killed between committing a decision's deliveries and enqueueing their jobs (the
// TEST_CRASH_AFTER_COMMIT hook makes it SIGKILL itself there), next to a gateway that survives. The member's
// app, left without an answer, retries with the same Idempotency-Key on the survivor and gets the first answer;
// the committed offer is sent once, by the survivor's reconciler, with no process restarted.
import { afterAll, describe, expect, it } from 'vitest';
import { realUrls } from './support/backends.js';
import { killAll, redisOfOwn, spawnGateway } from './support/fault-processes.js';
import { attemptsOf, openFaultWorld, tallyOffers, type FaultWorld } from './support/fault-world.js';

const real = Boolean(realUrls.databaseUrl && realUrls.redisUrl);
/** From the crash until the stranded offer is sent: a few reconciler intervals on a busy machine. */
const RECOVERY_BOUND_MS = 30_000;

describe.runIf(real)('fault: a gateway killed between commit and enqueue', () => {
  let world: FaultWorld | undefined;
  afterAll(async () => {
    await killAll();
    await world?.close();
  });

  it('answers the retry with the first decision and sends its offer once from the surviving gateway', { timeout: 150_000 }, async () => {
    world = await openFaultWorld();
    const redis = await redisOfOwn();
    await redis.start();
    const [doomed, survivor] = await Promise.all([
      spawnGateway('doomed', world.env({ REDIS_URL: redis.url, ROLE: 'all', TEST_CRASH_AFTER_COMMIT: '1' })),
      spawnGateway('survivor', world.env({ REDIS_URL: redis.url, ROLE: 'all' })),
    ]);
    await Promise.all([doomed.ready(), survivor.ready()]);
    await world.checkinCampaign(survivor.url);
    const members = await world.seedMembers(20);

    // The first attempt goes to the doomed gateway, the retries (as a load balancer would send them) to the other.
    const crashed = doomed.exited.then(() => Date.now());
    const first = await world.checkin((attempt) => (attempt === 0 ? doomed.url : survivor.url), members[0]!, { timeoutMs: 5000 });
    expect(await Promise.race([doomed.exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('still running'), 2000))])).toBe('exited');
    const crashedAt = await crashed;
    // Others check in meanwhile, on the survivor.
    const others = await Promise.all(members.slice(1).map((m) => world!.checkin(() => survivor.url, m)));
    const results = [first, ...others];

    const decisions = await world.db.query<{ outcome: string }>('SELECT outcome FROM decisions WHERE member_id = $1', [members[0]!.id]);
    const tally = await tallyOffers(world, results, 60_000);
    const attempts = attemptsOf(results);
    const strandedSentAt = first.deliveryIds[0] ? tally.sentAt.get(first.deliveryIds[0]) : undefined;
    // Whatever the first member's deliveries became, acknowledged or not, and the messages each got.
    const ownDeliveries = () => world!.db.query<{ id: string; status: string }>('SELECT id, status FROM deliveries WHERE member_id = $1', [members[0]!.id]);
    let own = await ownDeliveries();
    for (const until = Date.now() + RECOVERY_BOUND_MS; own.some((d) => ['queued', 'sending'].includes(d.status)) && Date.now() < until; own = await ownDeliveries()) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const ownSummary = own.map((d) => `${d.status}/${world!.sentPerDelivery().get(d.id) ?? 0} msg`).join(', ');
    console.log(`[fault] gateway SIGKILLed between commit and enqueue: first attempt ${first.attempts[0]!.error ?? first.attempts[0]!.status}, `
      + `retry answered ${first.final.status} ${first.outcome ?? first.final.body.error?.code} after ${first.attempts.length} attempts; `
      + `${tally.sentOnce}/${tally.acknowledged} offers sent once, ${tally.stale} stale, ${tally.lost.length} lost, ${tally.duplicated.length} duplicated, ${tally.unacknowledged.length} sent unacknowledged; `
      + `stranded offer sent ${strandedSentAt ? strandedSentAt - crashedAt : 'never'} ms after the crash; `
      + `the member's deliveries: ${ownSummary || 'none'}; decisions: ${decisions.map((d) => d.outcome).join(', ')}`);

    expect(first.attempts[0]!.status).toBe(0); // the doomed gateway never answered
    expect(first.final.status).toBe(202);
    expect(first.outcome).toBe('offer_queued');
    expect(decisions).toEqual([{ outcome: 'offer_queued' }]); // one decision: the retry was answered from it
    expect(attempts.errors5xx).toEqual([]);
    expect(tally.lost).toEqual([]);
    expect(tally.duplicated).toEqual([]);
    expect(tally.unacknowledged).toEqual([]);
    expect(tally.sentOnce).toBe(tally.acknowledged);
    expect(strandedSentAt! - crashedAt).toBeLessThan(RECOVERY_BOUND_MS);
    expect(survivor.alive()).toBe(true);
  });
});
