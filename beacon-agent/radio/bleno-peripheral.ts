// The box as a Bluetooth peripheral: the only file that imports @abandonware/bleno, loaded when start() is
// called. It advertises the store's iBeacon (which wakes members' apps) with our service in the scan response,
// takes the EID a phone writes (the active path) and answers a read with the sealed offers for that EID.
import { EID_WRITE_UUID, OFFERS_READ_UUID, SERVICE_UUID, decodeActiveWrite } from '../gatt.js';
import { encodeIBeacon } from '../frames.js';

// A type-only import: erased at compile time, so nothing loads until start().
import type BlenoModule from '@abandonware/bleno';

type Bleno = typeof BlenoModule;

export interface PeripheralOptions {
  ibeacon: { uuid: string; major: number; minor: number; txPower: number };
  /** A phone wrote its EID. */
  onEid(eid: string): void;
  /** The bytes to answer a read with, for the EID this connection wrote (if any). */
  offersFor(eid: string | undefined): Buffer;
}

/** One AD structure: length, type, data. */
const ad = (type: number, data: Buffer) => Buffer.concat([Buffer.from([data.length + 1, type]), data]);

export class BlenoPeripheral {
  private bleno: Bleno | undefined;

  async start(opts: PeripheralOptions): Promise<void> {
    const bleno = (this.bleno ??= ((await import('@abandonware/bleno')) as unknown as { default: Bleno }).default);
    // One connection at a time on most adapters: remember what it wrote until it goes.
    let written: string | undefined;
    bleno.on('accept', () => { written = undefined; });
    bleno.on('disconnect', () => { written = undefined; });

    const eidWrite = new bleno.Characteristic({
      uuid: EID_WRITE_UUID,
      properties: ['write', 'writeWithoutResponse'],
      onWriteRequest: (data, offset, _withoutResponse, callback) => {
        const w = offset === 0 ? decodeActiveWrite(data) : null;
        if (!w) return callback(bleno.Characteristic.RESULT_INVALID_ATTRIBUTE_LENGTH);
        written = w.eid;
        opts.onEid(w.eid);
        callback(bleno.Characteristic.RESULT_SUCCESS);
      },
    });
    const offersRead = new bleno.Characteristic({
      uuid: OFFERS_READ_UUID,
      properties: ['read'],
      // Long reads arrive in pieces with a growing offset; each piece is cut from the same answer.
      onReadRequest: (offset, callback) => {
        const answer = opts.offersFor(written);
        if (offset > answer.length) return callback(bleno.Characteristic.RESULT_INVALID_OFFSET);
        callback(bleno.Characteristic.RESULT_SUCCESS, answer.subarray(offset));
      },
    });

    // Flags (LE general discoverable, no BR/EDR), then the iBeacon manufacturer data; the service UUID goes in
    // the scan response, so the advertisement stays a standard iBeacon.
    const advertisement = Buffer.concat([ad(0x01, Buffer.from([0x06])), ad(0xff, encodeIBeacon(opts.ibeacon))]);
    const scanResponse = ad(0x07, Buffer.from(SERVICE_UUID, 'hex').reverse());
    await new Promise<void>((resolve, reject) => {
      const begin = (state: string) => {
        if (state !== 'poweredOn') return;
        bleno.startAdvertisingWithEIRData(advertisement, scanResponse, (err) => (err ? reject(err) : resolve()));
      };
      if (bleno.state === 'poweredOn') begin('poweredOn');
      else bleno.on('stateChange', begin);
    });
    await new Promise<void>((resolve, reject) => {
      bleno.setServices([new bleno.PrimaryService({ uuid: SERVICE_UUID, characteristics: [eidWrite, offersRead] })], (err) => (err ? reject(err) : resolve()));
    });
  }

  async stop(): Promise<void> {
    if (!this.bleno) return;
    const bleno = this.bleno;
    await new Promise<void>((resolve) => bleno.stopAdvertising(() => resolve()));
    bleno.disconnect();
  }
}
