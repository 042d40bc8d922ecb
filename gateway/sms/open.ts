import type { Config } from '../config.js';
import { preparePrivateDataDir } from '../data-dir.js';
import { outboxSender } from './outbox.js';
import type { SmsSender } from './sender.js';
import { twilioSender } from './twilio.js';

export const STATUS_CALLBACK_PATH = '/webhooks/twilio/status';

/** Twilio when credentials are configured, otherwise the local outbox file (in DATA_DIR, made private first). */
export function openSmsSender(config: Config): SmsSender {
  if (config.twilio) return twilioSender(config.twilio, `${config.publicUrl}${STATUS_CALLBACK_PATH}`);
  preparePrivateDataDir(config.dataDir);
  return outboxSender(config.dataDir);
}
