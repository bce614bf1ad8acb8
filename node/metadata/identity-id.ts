/**
 * The ids that tell clusters and node incarnations apart: 16 random bytes, written as 32 lowercase
 * hex digits in JSON, logs and messages (raw bytes in identity.bin and the peer handshake, where all
 * zeros means "not known"). A leaf, so the state machine can check them without file or wire code.
 */
import crypto from 'node:crypto';

/** Bytes of a cluster id or an incarnation. */
export const identityIdSizeBytes = 16;
const identityIdPattern = /^[0-9a-f]{32}$/;
/** The all-zero id: "not known" where a fixed-size field must hold something. */
export const zeroIdentityId = '0'.repeat(identityIdSizeBytes * 2);

/** A fresh random id (a cluster id or an incarnation), as lowercase hex. */
export function newIdentityId(): string {
  return crypto.randomBytes(identityIdSizeBytes).toString('hex');
}

/** True for a well-formed id: 32 lowercase hex digits, not all zero. */
export function isIdentityId(value: unknown): value is string {
  return typeof value === 'string' && identityIdPattern.test(value) && value !== zeroIdentityId;
}
