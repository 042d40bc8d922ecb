// The agent assembled: a source of advertisements (the radio or a recording) under a watchdog, the pipeline to
// presence events, the durable outbox, the uploader, and (with the radio) the iBeacon and hand-over service
// fed by polling the gateway for sealed offers.
import fs from 'node:fs';
import type { AgentConfig } from './config.js';
import { HandoverStore, type SealedOffer } from './handover.js';
import { Outbox } from './outbox.js';
import { Pipeline } from './pipeline.js';
import { PresenceTracker } from './presence.js';
import { BlenoPeripheral } from './radio/bleno-peripheral.js';
import { NobleScanner } from './radio/noble-scanner.js';
import { loadPrivateKey, signRequest } from './signing.js';
import { ReplaySource, Watchdog, type ScanSource } from './sources.js';
import { Uploader, type Log } from './uploader.js';

export interface AgentOptions {
  /** A source of advertisements instead of the configured one (tests, simulations). */
  source?: ScanSource;
  fetch?: typeof globalThis.fetch;
  log?: Log;
  /** The box's clock (ms); the replay's recorded time when replaying. */
  now?: () => number;
}

export interface RunningAgent {
  pipeline: Pipeline;
  outbox: Outbox;
  uploader: Uploader;
  handover: HandoverStore;
  /** Polls the gateway for sealed offers once (also done every offersPollMs). */
  pollOffers(): Promise<void>;
  /** Presence events not yet acknowledged by the gateway. */
  readonly pending: number;
  stop(): Promise<void>;
}

export async function startAgent(config: AgentConfig, opts: AgentOptions = {}): Promise<RunningAgent> {
  const log: Log = opts.log ?? ((level, message, fields) => console[level === 'info' ? 'log' : level](JSON.stringify({ level, message, ...fields })));
  const privateKey = loadPrivateKey(fs.readFileSync(config.privateKeyFile, 'utf8'));
  const doFetch = opts.fetch ?? globalThis.fetch;
  fs.mkdirSync(config.dataDir, { recursive: true });
  const outbox = await Outbox.open(config.dataDir);
  const tracker = new PresenceTracker({ agentId: config.agentId, zones: config.zones, rssiOffset: config.rssiOffset });

  // Appends are chained so events reach the disk in the order they happened.
  let writing = Promise.resolve();
  const pipeline = new Pipeline(tracker, (events) => {
    writing = writing.then(() => outbox.append(events)).catch((err: unknown) => log('error', 'outbox append failed', { error: String(err) }));
  });

  let source: ScanSource;
  if (opts.source) source = opts.source;
  else if (config.source === 'replay') source = ReplaySource.fromFile(config.replayFile!, { speed: config.replaySpeed });
  else source = new NobleScanner();
  const replay = source instanceof ReplaySource ? source : null;
  const now = opts.now ?? (() => replay?.recordedNow() ?? Date.now());
  // A recording that has run out is over, not stuck: only a live source is watched and restarted.
  const watched = replay ? source : new Watchdog(source, {
    quietMs: config.watchdogQuietMs,
    onRestart: ({ restarts, error }) => log(error ? 'error' : 'warn', 'scan restarted after silence', { restarts, ...(error ? { error: String(error) } : {}) }),
  });
  await watched.start((ad) => pipeline.advertisement(ad));

  const abort = new AbortController();
  const uploader = new Uploader({
    outbox, gatewayUrl: config.gatewayUrl, agentId: config.agentId, privateKey, batchSize: config.batchSize,
    flushIntervalMs: config.flushMs, fetch: doFetch, log,
  });
  const uploading = uploader.run(abort.signal);
  const ticker = setInterval(() => pipeline.tick(now()), 1000);

  const handover = new HandoverStore();
  const pollOffers = async () => {
    const path = '/ingest/offers';
    // The uploader's correction for a box clock that is off applies here too.
    const headers = signRequest(privateKey, config.agentId, { method: 'GET', path, timestamp: Date.now() + uploader.stats.clockOffsetMs, body: '' });
    try {
      const res = await doFetch(new URL(path, config.gatewayUrl), { headers, signal: AbortSignal.timeout(10_000) });
      if (!res.ok) return log('warn', 'offers poll refused', { status: res.status, body: (await res.text()).slice(0, 200) });
      handover.replace(((await res.json()) as { offers: SealedOffer[] }).offers);
    } catch (err) {
      log('warn', 'offers poll failed', { error: String(err) });
    }
  };
  let poller: NodeJS.Timeout | undefined;

  let peripheral: BlenoPeripheral | undefined;
  if (config.advertise && config.source === 'radio' && !opts.source) {
    peripheral = new BlenoPeripheral();
    await peripheral.start({
      ibeacon: config.advertise,
      onEid: (eid) => pipeline.activeWrite(eid, Date.now()),
      offersFor: (eid) => handover.answer(eid, Date.now()),
    });
    await pollOffers();
    // Offers are fetched only by a box that can hand them over.
    poller = setInterval(() => void pollOffers(), config.offersPollMs);
  }

  return {
    pipeline, outbox, uploader, handover, pollOffers,
    get pending() {
      return outbox.pending;
    },
    async stop() {
      clearInterval(ticker);
      clearInterval(poller);
      await watched.stop();
      await peripheral?.stop();
      await writing;
      abort.abort();
      await uploading;
      await outbox.close();
    },
  };
}
