/**
 * Encoding of configuration-change entries. A conf entry carries the change AND the full resulting
 * configuration, so any suffix of the log (e.g. what a new learner receives) is self-describing:
 * the configuration at an index is the last conf entry at or before it, or the snapshot's.
 */
import type { ConfChange, ConfState } from './types.js';
import { ConfChangeType } from './types.js';

export interface ConfEntryData {
  readonly change: ConfChange;
  readonly conf: ConfState;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfEntry(d: ConfEntryData): Uint8Array {
  return encoder.encode(JSON.stringify(d));
}

/** Returns null when `data` is not a well-formed conf entry (a peer sent garbage). */
export function decodeConfEntry(data: Uint8Array): ConfEntryData | null {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(data));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as {
    change?: { type?: unknown; nodeId?: unknown };
    conf?: { voters?: unknown; learners?: unknown };
  };
  const types: readonly unknown[] = Object.values(ConfChangeType);
  if (!o.change || !types.includes(o.change.type) || !isId(o.change.nodeId)) return null;
  if (!o.conf || !isIdList(o.conf.voters) || !isIdList(o.conf.learners)) return null;
  return v as ConfEntryData;
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

function isIdList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every(isId);
}

/** Applies `change` to `conf`; returns the reason (a string) when it does not apply. */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState | string {
  const { nodeId } = change;
  if (!isId(nodeId)) return `node id ${String(nodeId)} is not a positive integer`;
  const isVoter = conf.voters.includes(nodeId);
  const isLearner = conf.learners.includes(nodeId);
  switch (change.type) {
    case ConfChangeType.AddLearner:
      if (isVoter || isLearner) return `node ${nodeId} is already a member`;
      return { voters: [...conf.voters], learners: sorted([...conf.learners, nodeId]) };
    case ConfChangeType.Promote:
      if (!isLearner) return `node ${nodeId} is not a learner`;
      return {
        voters: sorted([...conf.voters, nodeId]),
        learners: conf.learners.filter((x) => x !== nodeId),
      };
    case ConfChangeType.Remove: {
      if (!isVoter && !isLearner) return `node ${nodeId} is not a member`;
      const voters = conf.voters.filter((x) => x !== nodeId);
      if (voters.length === 0) return 'cannot remove the last voter';
      return { voters, learners: conf.learners.filter((x) => x !== nodeId) };
    }
    default:
      return `unknown configuration change type ${String((change as { type: unknown }).type)}`;
  }
}

function sorted(ids: number[]): number[] {
  return ids.sort((a, b) => a - b);
}
