import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CryptoErrorCode, isCryptoError } from './errors.js';
import { DecryptionKeys, EncryptionKeys } from './keys.js';
import { decryptPrefix, scanForSeipd } from './quick-check.js';
import { passphraseSessionKeys } from './seipd-decrypt.js';
import { decrypt, encrypt, nativeDecrypt } from './test/helpers.js';

// The native SEIPDv1 reader (seipd-decrypt.ts) on its own, fed in awkward pieces; the stream that
// picks it (streams.ts) is covered by streams.test.ts, and gpg's messages by gpg-interop.test.ts.

const PASSPHRASE = 'native reader';
const CHUNK = 1 << 18;

describe('native SEIPDv1 decryption', () => {
  it.each([0, 1, 191, 192, 8383, 8384, CHUNK - 47, CHUNK, 3 * CHUNK + 7])('%i bytes, fed in 1, 7, 4099 and 1 MiB pieces', async (size) => {
    const plain = randomBytes(size);
    const message = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE));
    for (const piece of size > 10_000 ? [4099, 1 << 20] : [1, 7, 4099]) {
      const { output, error } = await nativeDecrypt(message, PASSPHRASE, piece);
      expect(error, `piece ${piece}`).toBeUndefined();
      expect(output.equals(plain), `piece ${piece}`).toBe(true);
    }
  });

  it('a wrong passphrase unwraps no AES session key (or one the quick check rejects)', async () => {
    const message = await encrypt(Buffer.from('x'), EncryptionKeys.fromPassphrase(PASSPHRASE));
    const scan = scanForSeipd(message);
    if (scan.state !== 'found') throw new Error('no SEIPD');
    const keys = (await passphraseSessionKeys(message.subarray(0, scan.start), 'wrong')) ?? [];
    expect(
      keys.every((key) => {
        const p = decryptPrefix(key, scan.prefix)!;
        return p[14] !== p[16] || p[15] !== p[17];
      }),
    ).toBe(true);
    expect((await decrypt(message, DecryptionKeys.fromPassphrase('wrong'))).error).toMatchObject({ code: CryptoErrorCode.WrongKey });
  });

  it('every flipped byte of the encrypted data fails with integrity, after the last byte at the latest', async () => {
    const plain = randomBytes(CHUNK + 5000);
    const message = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE));
    const start = (scanForSeipd(message) as { start: number }).start;
    // Past the prefix (a flip there fails the quick check: wrong_key), into the literal header, the
    // data, the second partial length header and the MDC.
    for (const at of [start + 22, start + 100, start + 2 + CHUNK, start + 3 + CHUNK, message.length - 23, message.length - 21, message.length - 1]) {
      const flipped = Buffer.from(message);
      flipped[at]! ^= 0x40;
      const { error } = await nativeDecrypt(flipped, PASSPHRASE, 65_536);
      expect(isCryptoError(error, CryptoErrorCode.Integrity), `flip at ${at}: ${String(error)}`).toBe(true);
    }
  });

  it('a message cut anywhere after the header fails with integrity in final()', async () => {
    const message = await encrypt(randomBytes(CHUNK + 5000), EncryptionKeys.fromPassphrase(PASSPHRASE));
    for (const cut of [message.length - 1, message.length - 22, message.length - 23, CHUNK, 200]) {
      const { error } = await nativeDecrypt(message.subarray(0, cut), PASSPHRASE, 65_536);
      expect(isCryptoError(error, CryptoErrorCode.Integrity), `cut at ${cut}`).toBe(true);
    }
  });
});
