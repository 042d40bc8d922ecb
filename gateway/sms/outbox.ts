// The embedded default without Twilio credentials: each SMS becomes one JSON line in DATA_DIR/outbox.ndjson.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../data-dir.js';
import type { SmsSender } from './sender.js';

export function outboxSender(dataDir: string, now: () => Date = () => new Date()): SmsSender & { file: string } {
  const file = path.join(dataDir, 'outbox.ndjson');
  return {
    kind: 'outbox',
    file,
    async send(message) {
      const providerId = `outbox-${randomUUID()}`;
      // Phones, sign-up codes and coupon codes: for the gateway's user alone (see data-dir.ts).
      await fs.mkdir(dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
      await fs.appendFile(file, JSON.stringify({ id: providerId, at: now().toISOString(), ...message }) + '\n', { mode: PRIVATE_FILE_MODE });
      return { providerId };
    },
    async findSent({ to, body }) {
      const text = await fs.readFile(file, 'utf8').catch(() => '');
      for (const line of text.split('\n')) {
        if (!line) continue;
        let m: { id: string; to: string; body: string };
        try {
          m = JSON.parse(line) as typeof m;
        } catch {
          continue; // a line a dying process left half-written: no message went out with it
        }
        if (m.to === to && m.body === body) return { providerId: m.id };
      }
      return null;
    },
  };
}
