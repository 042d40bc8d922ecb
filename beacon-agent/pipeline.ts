// From the air to the outbox: every advertisement is decoded; only Eddystone-EID frames (members' rotating
// identifiers) and EIDs written over GATT become sightings; everything else (phones, headphones, other
// beacons) is counted and forgotten here, on the box. Sightings drive presence; presence events go to the sink.
import { FrameStats } from './frames.js';
import type { PresenceTracker } from './presence.js';
import type { Advertisement, PresenceEvent } from './types.js';

export interface PipelineStats {
  frames: FrameStats;
  /** Advertisements that were not a member EID: dropped on the box. */
  ignored: number;
  sightings: number;
  events: number;
}

export class Pipeline {
  readonly stats: PipelineStats = { frames: new FrameStats(), ignored: 0, sightings: 0, events: 0 };

  constructor(
    private readonly tracker: PresenceTracker,
    private readonly sink: (events: PresenceEvent[]) => void,
    /** RSSI given to a GATT write: the phone is connected, so it is close to the box. */
    private readonly activeRssi = -50,
  ) {}

  /** One advertisement from any source (radio, replay, simulation). */
  advertisement(ad: Advertisement): void {
    const frame = this.stats.frames.record(ad);
    if (frame?.kind !== 'eddystone_eid') {
      this.stats.ignored += 1;
      return;
    }
    this.sighting(frame.eid, ad.rssi, ad.seenAt, 'ble_passive');
  }

  /** A phone wrote its current EID over GATT (the active path). */
  activeWrite(eid: string, atMs: number): void {
    this.sighting(eid, this.activeRssi, atMs, 'ble_active');
  }

  /** Time passes: exits after silence, dwell events. */
  tick(nowMs: number): void {
    this.emit(this.tracker.tick(nowMs));
  }

  private sighting(eid: string, rssi: number, at: number, source: 'ble_passive' | 'ble_active'): void {
    this.stats.sightings += 1;
    this.emit(this.tracker.observe({ eid, rssi, at, source }));
  }

  private emit(events: PresenceEvent[]): void {
    if (events.length === 0) return;
    this.stats.events += events.length;
    this.sink(events);
  }
}
