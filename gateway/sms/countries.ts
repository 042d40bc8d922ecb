// The country allowlist (SMS_COUNTRIES): the gateway texts numbers of these countries only. A number elsewhere
// costs more and is where SMS pumping sends its traffic; no text of any kind goes there.
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { SmsSendError, type SmsSender } from './sender.js';

/** The stable reason a text to a number outside the allowlist is not sent. */
export const COUNTRY_NOT_ALLOWED = 'SMS_COUNTRY_NOT_ALLOWED';

/** Whether an E.164 number belongs to one of the countries; a number whose country cannot be told does not. */
export function mayText(countries: readonly string[], phone: string): boolean {
  const country = parsePhoneNumberFromString(phone)?.country;
  return country !== undefined && countries.includes(country);
}

/** The sender, refusing (for good, without asking the carrier) any message to a number outside the countries. */
export function withinCountries(sender: SmsSender, countries: readonly string[]): SmsSender {
  return {
    kind: sender.kind,
    async send(message) {
      if (!mayText(countries, message.to)) {
        throw new SmsSendError(`${message.to} is outside SMS_COUNTRIES (${countries.join(', ')})`, false, COUNTRY_NOT_ALLOWED);
      }
      return sender.send(message);
    },
    findSent: (query) => sender.findSent(query),
  };
}
