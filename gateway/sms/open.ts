import type { Config } from '../config.js';
import { outboxSender } from './outbox.js';
import type { SmsSender } from './sender.js';
import { twilioSender } from './twilio.js';

/** Twilio when credentials are configured, otherwise the local outbox file. */
export function openSmsSender(config: Config): SmsSender {
  return config.twilio ? twilioSender(config.twilio) : outboxSender(config.dataDir);
}
