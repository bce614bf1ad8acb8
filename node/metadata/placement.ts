/**
 * Placement: which node leads a new topic's first segment and the segment after a seal. Pure
 * functions of the voters and of which of them are alive, so every caller (and a test) gets the
 * same answer from the same view.
 */

/**
 * The initial segment leader of a new topic: the name hashed (FNV-1a) over the voters that are
 * alive (a node the Raft leader has not heard from within an election timeout gets no new
 * segments); `self` when no voter is known alive.
 */
export function placeNewTopic(name: string, aliveVoters: readonly number[], self: number): number {
  const candidates = aliveVoters.length > 0 ? [...aliveVoters].sort((a, b) => a - b) : [self];
  let hash = 2166136261;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 16777619) >>> 0;
  return candidates[hash % candidates.length]!;
}

/**
 * The leader of the segment after one led by `current`: round-robin over the voters after it, as
 * in Walrus, skipping voters that are not alive when one is. `self` when there are no voters.
 */
export function nextSegmentLeader(
  current: number,
  voters: readonly number[],
  aliveVoters: readonly number[],
  self: number,
): number {
  const sorted = [...voters].sort((a, b) => a - b);
  if (sorted.length === 0) return self;
  const alive = new Set(aliveVoters);
  const start = Math.max(
    0,
    sorted.findIndex((v) => v > current),
  );
  for (let i = 0; i < sorted.length; i++) {
    const candidate = sorted[(start + i) % sorted.length]!;
    if (alive.has(candidate)) return candidate;
  }
  return sorted[start % sorted.length]!;
}

/** Copies of a segment when the topic does not say: three, or every voter when there are fewer. */
export const replicationFactorDefault = 3;

/**
 * A new segment's replica set: its leader first, then the voters after it in ring order, alive
 * ones first (a segment whose followers are dead from the start could not acknowledge anything).
 * `factor` null: the default; never more copies than voters.
 */
export function placeReplicas(
  leader: number,
  voters: readonly number[],
  aliveVoters: readonly number[],
  factor: number | null,
): number[] {
  const sorted = [...new Set(voters)].sort((a, b) => a - b);
  const wanted = Math.max(1, Math.min(factor ?? replicationFactorDefault, Math.max(1, sorted.length)));
  const alive = new Set(aliveVoters);
  const start = Math.max(
    0,
    sorted.findIndex((v) => v > leader),
  );
  const ring: number[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const id = sorted[(start + i) % sorted.length]!;
    if (id !== leader) ring.push(id);
  }
  const followers = [...ring.filter((id) => alive.has(id)), ...ring.filter((id) => !alive.has(id))];
  return [leader, ...followers.slice(0, wanted - 1)];
}

/**
 * The voter to take over a gone replica's copy of a segment: the first live voter after the gone
 * one in ring order that holds no copy yet and is not being removed; null when there is none (the
 * segment stays under-replicated until one joins).
 */
export function repairTarget(
  gone: number,
  replicas: readonly number[],
  voters: readonly number[],
  aliveVoters: readonly number[],
  excluded: ReadonlySet<number>,
): number | null {
  const sorted = [...new Set(voters)].sort((a, b) => a - b);
  const alive = new Set(aliveVoters);
  const start = Math.max(
    0,
    sorted.findIndex((v) => v > gone),
  );
  for (let i = 0; i < sorted.length; i++) {
    const id = sorted[(start + i) % sorted.length]!;
    if (id !== gone && alive.has(id) && !replicas.includes(id) && !excluded.has(id)) return id;
  }
  return null;
}
