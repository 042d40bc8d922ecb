// The embedded default without Twilio credentials: each SMS becomes one JSON line in DATA_DIR/outbox.ndjson.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { SmsSender } from './sender.js';

export function outboxSender(dataDir: string, now: () => Date = () => new Date()): SmsSender & { file: string } {
  const file = path.join(dataDir, 'outbox.ndjson');
  return {
    kind: 'outbox',
    file,
    async send(message) {
      const providerId = `outbox-${randomUUID()}`;
      await fs.mkdir(dataDir, { recursive: true });
      await fs.appendFile(file, JSON.stringify({ id: providerId, at: now().toISOString(), ...message }) + '\n');
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
