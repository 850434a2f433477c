import { describeStorageAdapter } from './conformance.js';
import { MemoryStorage } from './memory.js';

describeStorageAdapter({ name: 'MemoryStorage', create: async () => ({ adapter: new MemoryStorage() }) });
