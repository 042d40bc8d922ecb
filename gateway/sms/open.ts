import { twilioTimeoutMs, type Config } from '../config.js';
import { preparePrivateDataDir } from '../data-dir.js';
import { withinCountries } from './countries.js';
import { outboxSender } from './outbox.js';
import type { SmsSender } from './sender.js';
import { twilioSender } from './twilio.js';

export const STATUS_CALLBACK_PATH = '/webhooks/twilio/status';

/** Twilio when credentials are configured, otherwise the local outbox file (in DATA_DIR, made private first); either texts SMS_COUNTRIES only. */
export function openSmsSender(config: Config): SmsSender {
  if (!config.twilio) preparePrivateDataDir(config.dataDir);
  const sender = config.twilio
    ? twilioSender(config.twilio, `${config.publicUrl}${STATUS_CALLBACK_PATH}`, twilioTimeoutMs(config.sendLeaseMs))
    : outboxSender(config.dataDir);
  return withinCountries(sender, config.smsCountries);
}
