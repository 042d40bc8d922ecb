// The real Bluetooth scanner: the only file that imports @abandonware/noble, and only when start() is called
// (noble throws EAFNOSUPPORT at load on a machine without an adapter). It hands out plain Advertisements.
import type { ScanSource } from '../sources.js';
import type { Advertisement } from '../types.js';

// A type-only import: erased at compile time, so nothing loads until start().
import type * as NobleModule from '@abandonware/noble';

type Noble = typeof NobleModule;

export class NobleScanner implements ScanSource {
  readonly name = 'noble';
  private noble: Noble | undefined;

  async start(onAdvertisement: (ad: Advertisement) => void): Promise<void> {
    const noble = (this.noble ??= ((await import('@abandonware/noble')) as unknown as { default: Noble }).default);
    noble.removeAllListeners('discover');
    noble.on('discover', (p) => {
      const a = p.advertisement;
      onAdvertisement({
        address: p.address,
        rssi: p.rssi,
        ...(a.manufacturerData ? { manufacturerData: a.manufacturerData } : {}),
        ...(a.serviceData?.length ? { serviceData: a.serviceData.map((s) => ({ uuid: s.uuid.toLowerCase(), data: s.data })) } : {}),
        seenAt: Date.now(),
      });
    });
    // Duplicates allowed: presence needs every sighting's RSSI, not only the first one.
    if (noble._state !== 'poweredOn') {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the Bluetooth adapter did not power on within 30 s')), 30_000);
        const onState = (state: string) => {
          if (state !== 'poweredOn') return;
          clearTimeout(timer);
          noble.removeListener('stateChange', onState);
          resolve();
        };
        noble.on('stateChange', onState);
      });
    }
    await noble.startScanningAsync([], true);
  }

  async stop(): Promise<void> {
    if (!this.noble) return;
    await this.noble.stopScanningAsync();
    this.noble.removeAllListeners('discover');
  }
}
