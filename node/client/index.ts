/**
 * The public surface of the cluster client for the gateway and the CLI: one import path.
 */
export { ErrorCode, errorCodeInfo, isErrorCode, WalrusError } from '../protocol/error-codes.js';
export type { LeaderHint } from '../protocol/error-codes.js';
export type * from '../protocol/messages.js';
export { replicationFactorMax } from '../protocol/messages.js';
export { TransportError, isAmbiguousFailure } from '../transport/transport-error.js';
export { adminToolNodeId, type AdminOptions, removeNodeAsAdmin } from './admin-client.js';
export { LeaderCache } from './leader-cache.js';
export { parseNodeAddress, type NodeAddress } from './node-address.js';
export { sendTextCommand, TextClient, type TextClientOptions } from './text-client.js';
export {
  type AppendOptions,
  type AppendResult,
  type CallOptions,
  type ConsumerReadOptions,
  type ReadOptions,
  type TopicSettings,
  WalrusClient,
  type WalrusClientOptions,
  walrusClientDefaults,
} from './walrus-client.js';
