import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { PushChannel } from '../push/provider.js';
import type { JobQueue } from '../queue/port.js';
import type { SmsSender } from '../sms/sender.js';

/** What the gateway's services are built from; tests pass their own clock. */
export interface Deps {
  config: Config;
  db: Database;
  queue: JobQueue;
  sms: SmsSender;
  /** Web Push with the gateway's VAPID key; absent where nothing is pushed (deps built for a single service). */
  push?: PushChannel;
  now: () => Date;
  /** The app's logger, once the app is built; absent in deps made for a single service. */
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}
