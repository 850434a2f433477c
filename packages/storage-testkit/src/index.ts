export { describeStorageAdapter, type AdapterUnderTest, type StorageAdapterSuiteOptions } from './conformance.js';
export { forwarding, type AdapterOperations } from './forwarding.js';
export { resumedFrom } from './resume.js';
export { MemoryStorage, type MemoryStorageOptions } from './memory.js';
export {
  withChaos,
  type ChaosAdapter,
  type ChaosFault,
  type ChaosGetFault,
  type ChaosOperation,
  type ChaosPlan,
} from './chaos.js';
export { describeBucketLifecycle, type BucketLifecycleSuiteOptions, type BucketRule } from './lifecycle.js';
