export { CompressionError, CompressionErrorCode, decodeError } from './errors.js';
export { DEFAULT_LEVEL, DEFAULT_WORKERS, createCompressStream, createDecompressStream, type CompressOptions, type Recycling } from './zstd.js';
export { createThreadedDecompressStream, startDecodeThread, stopDecodeThread } from './zstd-thread.js';
