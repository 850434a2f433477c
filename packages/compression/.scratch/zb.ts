import { createReadStream, statSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CompressStream } from 'zstd-napi';
const file = '/tmp/bench/wms.sqlite3';
const mib = statSync(file).size / 1048576;
for (const nbWorkers of [0, 1, 2]) {
  for (let rep = 0; rep < 2; rep++) {
    let out = 0;
    const t = performance.now();
    await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), new CompressStream({ compressionLevel: 3, checksumFlag: true, nbWorkers }), new Writable({ write(c, _e, cb) { out += c.length; cb(); } }));
    const s = (performance.now() - t) / 1000;
    console.log(`nbWorkers=${nbWorkers} ${(mib / s).toFixed(0)} MiB/s ratio ${(mib * 1048576 / out).toFixed(2)} cpu ${JSON.stringify(process.cpuUsage())}`);
  }
}
