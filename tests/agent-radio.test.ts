// The radio files load noble and bleno only when started: importing them is safe on a machine without a
// Bluetooth adapter (as every machine here is), and starting them fails with the adapter's error, not earlier.
import { describe, expect, it } from 'vitest';

describe('the radio adapters', () => {
  it('import without loading noble or bleno, and fail only when started without an adapter', async () => {
    const { NobleScanner } = await import('../beacon-agent/radio/noble-scanner.js');
    const { BlenoPeripheral } = await import('../beacon-agent/radio/bleno-peripheral.js');
    const scanner = new NobleScanner();
    await scanner.stop(); // never started: nothing to stop, nothing loaded
    await expect(scanner.start(() => {})).rejects.toThrow(/EAFNOSUPPORT|adapter|not supported/i);
    const peripheral = new BlenoPeripheral();
    await expect(peripheral.start({
      ibeacon: { uuid: 'f7826da6-4fa2-4e98-8024-bc5b71e0893e', major: 1, minor: 2, txPower: -59 },
      onEid: () => {}, offersFor: () => Buffer.alloc(1),
    })).rejects.toThrow(/EAFNOSUPPORT|adapter|not supported/i);
  });
});
