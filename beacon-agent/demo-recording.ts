// `npm run agent:recording -- <gateway URL> <member id> <member's app token> <file>`: writes a recording of a member's phone standing
// by a box for the last two minutes (plus a pair of headphones nearby), for `source: "replay"`. The phone's
// EIDs come from the member's identity key, which the gateway gives only to the member's app (their token), and
// only while they grant ble_detection.
import fs from 'node:fs';
import { passiveAdvertisement } from './member-app-sim.js';

const [gatewayUrl, memberId, appToken, file] = process.argv.slice(2);
if (!gatewayUrl || !memberId || !appToken || !file) {
  console.error("usage: npm run agent:recording -- <gateway URL> <member id> <member's app token> <file>");
  process.exit(2);
}
const res = await fetch(new URL(`/members/${memberId}/ble-identity`, gatewayUrl), { headers: { authorization: `Bearer ${appToken}` } });
if (!res.ok) {
  console.error(`the gateway has no identity key for member ${memberId}: ${res.status} ${await res.text()}`);
  process.exit(1);
}
const key = (await res.json()) as { identityKey: string; rotationExponent: number };
const app = { identityKey: Buffer.from(key.identityKey, 'base64'), k: key.rotationExponent };
const end = Date.now();
const lines: string[] = [];
for (let t = end - 120_000; t <= end; t += 1000) {
  const ad = passiveAdvertisement(app, t, -58 - ((t / 1000) % 4));
  lines.push(JSON.stringify({ t, address: ad.address, rssi: ad.rssi, svc: ad.serviceData!.map((s) => ({ uuid: s.uuid, data: s.data.toString('hex') })) }));
  lines.push(JSON.stringify({ t, address: 'aa:bb:cc:dd:ee:ff', rssi: -55, mfg: '4c0010050b1c0a3b2c' }));
}
fs.writeFileSync(file, `${lines.join('\n')}\n`);
console.log(`wrote ${lines.length} advertisements to ${file}`);
