// The agent's vocabulary, shared by its parts and by the gateway's ingest. Plain data only: nothing here
// knows about noble, bleno, files or HTTP.
//
// Glossary
// - advertisement: one BLE advertising packet as a scanner hands it over (address, RSSI, payloads).
// - frame: what an advertisement says, decoded (an iBeacon, an Eddystone UID/URL/TLM/EID frame).
// - EID: an Eddystone ephemeral identifier, 8 bytes, that a member's phone broadcasts and rotates every
//   2^K seconds. Only the gateway, holding the member's identity key, can tell whose it is.
// - sighting: one reception of a member's EID by this box, passive (heard an advertisement) or active (the
//   phone connected to the box's GATT service and wrote its current EID).
// - presence event: what the agent uploads: an EID entered, dwells in, or left a zone.

/** One advertisement as a scanner reports it. `seenAt` is milliseconds since the epoch. */
export interface Advertisement {
  address: string;
  rssi: number;
  /** Manufacturer-specific data, company id first (little-endian), as in the AD structure. */
  manufacturerData?: Buffer;
  /** Service data by 16-bit service UUID, lower-case hex without dashes (e.g. 'feaa'). */
  serviceData?: Array<{ uuid: string; data: Buffer }>;
  seenAt: number;
}

export type Frame =
  | { kind: 'ibeacon'; uuid: string; major: number; minor: number; txPower: number }
  | { kind: 'eddystone_uid'; namespace: string; instance: string; txPower: number }
  | { kind: 'eddystone_url'; url: string; txPower: number }
  | {
    kind: 'eddystone_tlm';
    /** 0: plain telemetry; 1: encrypted (eTLM), whose fields stay sealed. */
    version: 0 | 1;
    batteryMv: number | null;
    temperatureC: number | null;
    advCount: number | null;
    uptimeS: number | null;
  }
  | { kind: 'eddystone_eid'; eid: string; txPower: number };

/** Where a sighting came from. */
export type SightingSource = 'ble_passive' | 'ble_active';

/** A member's EID heard (or written) at this box: the only thing about a phone the agent keeps. */
export interface Sighting {
  /** 16 lower-case hex characters. */
  eid: string;
  rssi: number;
  at: number;
  source: SightingSource;
}

/** A zone this box watches, with its own thresholds (dBm, after calibration) and timings. */
export interface ZoneConfig {
  id: string;
  /** Smoothed RSSI at or above which a candidate may become inside. */
  enterRssi: number;
  /** Smoothed RSSI below which an inside EID starts leaving. Must be below enterRssi (hysteresis). */
  exitRssi: number;
  /** How long the smoothed RSSI must stay at or above enterRssi before "enter" (ms). */
  minDwellMs: number;
  /** How long an EID may be unheard or below exitRssi before "exit" (ms). */
  exitGraceMs: number;
  /** Every this many ms of continued presence, a "dwell" event (0: none). */
  dwellEveryMs: number;
}

export type PresenceKind = 'enter' | 'dwell' | 'exit';

/** What the agent uploads. The id is deterministic, so a retried upload is never counted twice. */
export interface PresenceEvent {
  id: string;
  kind: PresenceKind;
  eid: string;
  zoneId: string;
  /** When it happened at the box (ISO 8601). */
  at: string;
  source: SightingSource;
  /** 0..1: how sure the box is (how steady and strong the signal was). */
  confidence: number;
  /** Smoothed RSSI at the moment of the event. */
  rssi: number;
  /** For dwell and exit: how long the EID has been inside (ms). */
  dwellMs?: number;
}

/** The body of one signed upload. */
export interface IngestBatch {
  agentId: string;
  /** Unique per batch; a batch sent again (a retry) keeps its id. */
  batchId: string;
  events: PresenceEvent[];
}
