import type { StorageAdapter } from '@stowage/storage';

/** One configured destination, its adapter already wrapped (retry, limits). */
export interface Destination {
  name: string;
  adapter: StorageAdapter;
}

export interface ProgressEvent {
  /** `snapshot`, `hash`, `upload`, `verify`, `download`, `check`, `thaw` (done/total: artifacts readable). */
  phase: string;
  done: number;
  total?: number;
}

/** A destination that failed (or was left out of) an operation, and why. */
export interface DestinationFailure {
  destination: string;
  /** A stable error code (`stowage.storage.no_space`, `stowage.storage.unavailable`, …). */
  code: string;
  message: string;
}
