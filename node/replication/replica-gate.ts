/**
 * What a follower replica does with a replicated append (S5, S7, S8): refuse it when it comes from
 * an older epoch than one this replica was fenced at (FENCED: the sender was replaced), or for a
 * segment that is sealed here; open the segment locally when this is its first record; ask for a
 * resend from its own end after a gap; skip what it already holds (a resend). Pure: the caller
 * reads the local state and carries out the decision.
 */

export interface ReplicaAppendAsk {
  readonly segmentId: number;
  readonly baseOffset: number;
  readonly epoch: number;
  readonly firstOffset: number;
  readonly recordCount: number;
}

export interface LocalReplicaState {
  /** The highest epoch this replica was fenced at for the segment (0: never). */
  readonly fencedEpoch: number;
  /** The segment's epoch in the metadata as applied here, when the metadata lists it. */
  readonly metadataEpoch: number | null;
  /** True when the applied metadata has sealed the segment. */
  readonly sealedInMetadata: boolean;
  /** The local copy of this segment, if any. */
  readonly local: { readonly endOffset: number; readonly sealed: boolean } | null;
  /** The topic's local active segment, if another one than this. */
  readonly otherActive: { readonly id: number; readonly endOffset: number } | null;
}

export type ReplicaAppendDecision =
  | { readonly kind: 'fenced'; readonly epoch: number }
  | { readonly kind: 'sealed' }
  | { readonly kind: 'stale'; readonly activeId: number }
  | { readonly kind: 'gap'; readonly expectedOffset: number }
  | {
      readonly kind: 'append';
      /** Records at the front the replica already holds. */
      readonly skip: number;
      /** Open the local segment first, after sealing the other active one (cut to the new base). */
      readonly create: boolean;
      readonly sealOther: { readonly id: number; readonly cutTo: number | null } | null;
    };

export function decideReplicaAppend(ask: ReplicaAppendAsk, state: LocalReplicaState): ReplicaAppendDecision {
  const highest = Math.max(state.fencedEpoch, state.metadataEpoch ?? 0);
  if (ask.epoch < highest) return { kind: 'fenced', epoch: highest };
  if (state.sealedInMetadata || state.local?.sealed === true) return { kind: 'sealed' };
  const end = state.local?.endOffset ?? ask.baseOffset;
  if (ask.firstOffset > end) return { kind: 'gap', expectedOffset: end };
  const skip = Math.min(ask.recordCount, end - ask.firstOffset);
  if (state.local !== null) return { kind: 'append', skip, create: false, sealOther: null };
  const other = state.otherActive;
  if (other !== null && other.id > ask.segmentId) return { kind: 'stale', activeId: other.id };
  return {
    kind: 'append',
    skip,
    create: true,
    sealOther:
      other === null
        ? null
        : { id: other.id, cutTo: other.endOffset > ask.baseOffset ? ask.baseOffset : null },
  };
}
