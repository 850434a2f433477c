export { ExampleStorage } from './example.js';
export { exampleStorageFactory, type ExampleStorageOptions } from './factory.js';
