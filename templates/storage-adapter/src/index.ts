export { ExampleStorage } from './example.js';
export { exampleStorageFactory, type ExampleStorageOptions } from './factory.js';
/** The name Stowage looks for when a config lists this module under `adapters`. */
export { exampleStorageFactory as storageAdapterFactory } from './factory.js';
