import { twilioTimeoutMs, type Config } from '../config.js';
import { outboxSender } from './outbox.js';
import type { SmsSender } from './sender.js';
import { twilioSender } from './twilio.js';

export const STATUS_CALLBACK_PATH = '/webhooks/twilio/status';

/** Twilio when credentials are configured, otherwise the local outbox file. */
export function openSmsSender(config: Config): SmsSender {
  return config.twilio
    ? twilioSender(config.twilio, `${config.publicUrl}${STATUS_CALLBACK_PATH}`, twilioTimeoutMs(config.sendLeaseMs))
    : outboxSender(config.dataDir);
}
