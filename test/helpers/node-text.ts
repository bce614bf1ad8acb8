/**
 * Talking to a real walrus-node over the Walrus text protocol from tests and benchmarks: a few
 * commands on one connection, and the seed 002 METRICS JSON (null while the node cannot answer).
 */
import { TextClient } from '../../node/client/text-client.js';

/** The METRICS fields the tests and benchmarks look at (seed 002's and openraft's, side by side). */
export interface NodeMetrics {
  id: number;
  state: string;
  current_term: number;
  current_leader: number | null;
  last_log_index: number;
  membership_config: {
    nodes: number[];
    voters: number[];
    learners: number[];
    membership: { configs: number[][]; nodes: Record<string, { addr?: string; client_addr?: string }> };
  };
  replication: Record<string, { match_index: number; next_index: number; index: number }>;
  last_applied: number;
}

/**
 * The JSON object a STATE or METRICS reply is, or null for any other reply (an `ERR …`). Walrus
 * sends the object alone, so the whole reply is parsed, as its own clients do.
 */
export function jsonReply<T = Record<string, unknown>>(reply: string | undefined): T | null {
  return reply?.startsWith('{') ? (JSON.parse(reply) as T) : null;
}

/** Sends the commands in order on one connection and returns the replies. */
export async function textCommands(
  addr: string,
  commands: readonly string[],
  timeoutMs = 15_000,
): Promise<string[]> {
  const client = new TextClient(addr, { timeoutMs });
  try {
    const replies: string[] = [];
    for (const c of commands) replies.push(await client.send(c));
    return replies;
  } finally {
    await client.close();
  }
}

/** The node's METRICS, or null when it does not answer within timeoutMs (down, paused, starting). */
export async function nodeMetrics(addr: string, timeoutMs = 1500): Promise<NodeMetrics | null> {
  try {
    const [reply] = await textCommands(addr, ['METRICS'], timeoutMs);
    return jsonReply<NodeMetrics>(reply);
  } catch {
    return null;
  }
}
