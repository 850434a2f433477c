import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { OPENPGP_CONFIG } from '../src/keys.js';
const data = randomBytes(16 << 20);
for (const aeadAlgorithm of ['ocb', 'gcm', 'eax'] as const) {
  const t = performance.now();
  const msg = await openpgp.createMessage({ binary: data, format: 'binary' });
  const out = await openpgp.encrypt({ message: msg, passwords: ['pw'], format: 'binary', config: OPENPGP_CONFIG, sessionKey: { data: randomBytes(32), algorithm: 'aes256', aeadAlgorithm } });
  const s = (performance.now() - t) / 1000;
  const t2 = performance.now();
  const r = await openpgp.decrypt({ message: await openpgp.readMessage({ binaryMessage: out }), passwords: ['pw'], format: 'binary', config: OPENPGP_CONFIG });
  console.log(aeadAlgorithm, 'enc MiB/s', (16 / s).toFixed(1), 'dec MiB/s', (16 / ((performance.now() - t2) / 1000)).toFixed(1), Buffer.from(r.data).equals(data));
}
