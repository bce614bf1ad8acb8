#!/usr/bin/env node
/**
 * walrus-cli: the seed's CLI. `walrus-cli --addr host:port` opens an interactive shell (REGISTER,
 * PUT, GET, STATE, METRICS, plus status, topics and help; exit/quit/q or Ctrl-C to leave); one-off
 * subcommands `register`, `put`, `get`, `state`, `metrics` send one text command and exit. The
 * operator commands `status`, `topics`, `tail`, `transfer-leader` (cli-operator.ts) and
 * `remove-node` use the binary protocol. JSON replies are printed indented.
 * Exit codes: 0 ok, 1 an ERR reply or no connection, 2 bad usage.
 */
import readline from 'node:readline';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { TextClient } from '../client/text-client.js';
import { type NodeAccess, removeNodeAsAdmin } from '../client/admin-client.js';
import {
  type CliContext,
  statusCommand,
  tailCommand,
  topicsCommand,
  transferLeaderCommand,
} from './cli-operator.js';

const usage = `Usage: walrus-cli [--addr host:port] [--timeout-ms n] [--cluster-secret s] [--json]
                  [--token-file f] [--tls-ca f] [--tls-cert f --tls-key f] [command [args]]

Without a command, opens an interactive shell on the node at --addr (default 127.0.0.1:9091).
Commands (one-off, or typed in the shell in any case):
  register <topic>           create a topic (OK if it exists)
  put <topic> <payload…>     append one record ("quotes" around the payload are removed)
  get <topic>                read the next record through the topic's shared cursor
  state <topic>              topic metadata JSON (segments, leaders)
  metrics                    node and cluster metrics JSON
  status                     members, roles, term, leader and each member's lag (exit 1: no leader)
  topics                     topics: offsets, segments, leader, replicas, replication, retention
  help                       this text
Operator commands (one-off only):
  tail <topic> [--from start|end|<offset>] [--count n]
                             print records as they arrive (offset<TAB>value; default from end)
  transfer-leader <id>       admin: make voter <id> the Raft leader (answers once it leads)
  remove-node <id>           admin: remove a member from the cluster (the leader too); one at a time
                             (UNAVAILABLE while another node is being removed; again: joins it)
  The admin commands go to the Raft leader's peer port, with --cluster-secret (or env
  WALRUS_CLUSTER_SECRET) when the cluster has one.
--json prints status, topics, tail and transfer-leader as JSON.
A secured cluster (docs/cluster.md "Security"): --token-file (or env WALRUS_CLI_TOKEN) holds a
client token for nodes with --client-tokens-file; --tls-ca is the CA of nodes that speak TLS, and
--tls-cert/--tls-key a certificate it signed, for raft ports with --peer-mtls (the admin commands).
These apply to the operator and admin commands; the text commands have no way to authenticate.
Shell: exit, quit or q (or Ctrl-C / Ctrl-D) leaves.
`;

const jsonCommands = new Set(['STATE', 'METRICS']);
const arity: Record<string, number> = { REGISTER: 1, GET: 1, STATE: 1, METRICS: 0, PUT: 2 };

/** Strips one pair of matching surrounding quotes, as a shell user expects from `PUT logs "a b"`. */
function unquote(text: string): string {
  const t = text.trim();
  if (t.length >= 2 && (t[0] === '"' || t[0] === "'") && t[t.length - 1] === t[0]) return t.slice(1, -1);
  return t;
}

/** Turns words typed by a user into a protocol command, or a usage message. */
export function toCommand(words: string[]): { command: string; keyword: string } | { problem: string } {
  const keyword = (words[0] ?? '').toUpperCase();
  const need = arity[keyword];
  if (need === undefined)
    return { problem: `unknown command '${words[0] ?? ''}' (register, put, get, state, metrics)` };
  if (keyword === 'PUT') {
    if (words.length < 3) return { problem: 'usage: put <topic> <payload>' };
    return { command: `PUT ${words[1]} ${unquote(words.slice(2).join(' '))}`, keyword };
  }
  if (words.length - 1 !== need)
    return {
      problem: need === 0 ? `usage: ${keyword.toLowerCase()}` : `usage: ${keyword.toLowerCase()} <topic>`,
    };
  return { command: need === 0 ? keyword : `${keyword} ${words[1]}`, keyword };
}

/**
 * Formats a reply for a person: JSON indented, everything else as sent. STATE and METRICS answer
 * the JSON object alone, as Walrus does; an `OK {json}` from an older Walrus-TS node reads too.
 */
export function formatReply(keyword: string, reply: string): string {
  if (!jsonCommands.has(keyword)) return reply;
  const json = reply.startsWith('{') ? reply : reply.startsWith('OK {') ? reply.slice(3) : null;
  if (json === null) return reply;
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return reply;
  }
}

async function oneOff(client: TextClient, words: string[]): Promise<number> {
  const parsed = toCommand(words);
  if ('problem' in parsed) {
    process.stderr.write(`walrus-cli: ${parsed.problem}\n`);
    return 2;
  }
  const reply = await client.send(parsed.command);
  if (reply.startsWith('ERR')) {
    process.stderr.write(`${reply}\n`);
    return 1;
  }
  process.stdout.write(`${formatReply(parsed.keyword, reply)}\n`);
  return 0;
}

/** Splits a shell line into words; PUT keeps the rest of the line as its payload. */
function shellWords(line: string): string[] {
  const trimmed = line.trim();
  const match = /^(\S+)\s+(\S+)\s+([\s\S]+)$/.exec(trimmed);
  if (match && match[1]!.toUpperCase() === 'PUT') return [match[1]!, match[2]!, match[3]!];
  return trimmed.split(/\s+/).filter((w) => w.length > 0);
}

async function shell(client: TextClient, addr: string, ctx: CliContext): Promise<number> {
  const interactive = process.stdin.isTTY === true;
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: interactive,
  });
  if (interactive)
    process.stdout.write(
      `Connected to ${addr}. Commands: REGISTER, PUT, GET, STATE, METRICS, STATUS, TOPICS, HELP; exit to leave.\n`,
    );
  rl.setPrompt('> ');
  if (interactive) rl.prompt();
  let status = 0;
  rl.on('SIGINT', () => rl.close());
  for await (const line of rl) {
    const words = shellWords(line);
    if (words.length === 0) {
      if (interactive) rl.prompt();
      continue;
    }
    const first = words[0]!.toLowerCase();
    if (first === 'exit' || first === 'quit' || first === 'q') break;
    if (first === 'help' || first === 'status' || first === 'topics') {
      try {
        if (first === 'help') process.stdout.write(usage);
        else await (first === 'status' ? statusCommand(ctx) : topicsCommand(ctx));
      } catch (error) {
        process.stdout.write(`${errorLine(error)}\n`);
      }
      if (interactive) rl.prompt();
      continue;
    }
    const parsed = toCommand(words);
    if ('problem' in parsed) {
      process.stdout.write(`${parsed.problem}\n`);
    } else {
      try {
        process.stdout.write(`${formatReply(parsed.keyword, await client.send(parsed.command))}\n`);
      } catch (error) {
        process.stdout.write(`connection error: ${(error as Error).message}\n`);
        status = 1;
        break;
      }
    }
    if (interactive) rl.prompt();
  }
  rl.close();
  return status;
}

/** `ERR <CODE> <message>`, as the text protocol writes errors. */
function errorLine(error: unknown): string {
  const code = (error as { code?: string }).code ?? 'UNAVAILABLE';
  return `ERR ${code} ${(error as Error).message}`;
}

/** Runs an operator command (cli-operator.ts): usage problems exit 2, errors print ERR and exit 1. */
async function operatorCommand(ctx: CliContext, args: string[], values: CliValues): Promise<number> {
  const [command, ...rest] = args;
  const usageError = (text: string): number => {
    process.stderr.write(`walrus-cli: usage: ${text}\n`);
    return 2;
  };
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  try {
    switch (command) {
      case 'status':
        return rest.length === 0 ? await statusCommand(ctx) : usageError('status');
      case 'topics':
        return rest.length === 0 ? await topicsCommand(ctx) : usageError('topics');
      case 'tail': {
        const from = values.from ?? 'end';
        const count = values.count === undefined ? null : Number(values.count);
        if (rest.length !== 1 || !(from === 'start' || from === 'end' || /^\d+$/.test(from)))
          return usageError('tail <topic> [--from start|end|<offset>] [--count n]');
        if (count !== null && !(Number.isSafeInteger(count) && count > 0))
          return usageError('tail: --count must be a positive integer');
        return await tailCommand(ctx, rest[0]!, from, count, controller.signal);
      }
      default: {
        const id = Number(rest[0]);
        if (rest.length !== 1 || !Number.isSafeInteger(id) || id < 1)
          return usageError('transfer-leader <node-id>');
        return await transferLeaderCommand(ctx, id);
      }
    }
  } catch (error) {
    process.stderr.write(`${errorLine(error)}\n`);
    return 1;
  }
}

const operatorCommands = new Set(['status', 'topics', 'tail', 'transfer-leader']);

/**
 * `remove-node <id>` is an admin operation, refused on the client port: it goes to the Raft
 * leader's peer port, authenticated with the cluster secret (node/client/admin-client.ts).
 */
async function removeNode(
  addr: string,
  args: string[],
  timeoutMs: number,
  clusterSecret: string | null,
  access: NodeAccess,
): Promise<number> {
  const id = Number(args[0]);
  if (args.length !== 1 || !Number.isSafeInteger(id) || id < 1) {
    process.stderr.write('walrus-cli: usage: remove-node <node-id>\n');
    return 2;
  }
  try {
    const { removed } = await removeNodeAsAdmin(id, { addr, clusterSecret, timeoutMs, access });
    process.stdout.write(removed ? `OK node ${id} removed\n` : `OK node ${id} was not a member\n`);
    return 0;
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'ERR';
    process.stderr.write(`ERR ${code} ${(error as Error).message}\n`);
    return 1;
  }
}

/** The token and TLS settings of a secured cluster, from the flags (files read here). */
function nodeAccessOf(values: CliValues): NodeAccess {
  const read = (flag: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined;
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new Error(
        `${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  };
  const token =
    read('--token-file', values['token-file'])?.trim() || process.env['WALRUS_CLI_TOKEN'] || undefined;
  const ca = read('--tls-ca', values['tls-ca']);
  const cert = read('--tls-cert', values['tls-cert']);
  const key = read('--tls-key', values['tls-key']);
  if ((cert === undefined) !== (key === undefined)) throw new Error('--tls-cert and --tls-key go together');
  const tls =
    ca === undefined && cert === undefined
      ? undefined
      : { ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert, key }) };
  return { ...(token === undefined ? {} : { token }), ...(tls === undefined ? {} : { tls }) };
}

interface CliValues {
  addr?: string;
  'timeout-ms'?: string;
  'cluster-secret'?: string;
  'token-file'?: string;
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  help?: boolean;
  json?: boolean;
  from?: string;
  count?: string;
}

async function main(): Promise<number> {
  let values: CliValues;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      strict: true,
      options: {
        addr: { type: 'string' },
        'timeout-ms': { type: 'string' },
        'cluster-secret': { type: 'string' },
        'token-file': { type: 'string' },
        'tls-ca': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        json: { type: 'boolean' },
        from: { type: 'string' },
        count: { type: 'string' },
      },
    }));
  } catch (error) {
    process.stderr.write(`walrus-cli: ${(error as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help || positionals[0] === 'help') {
    process.stdout.write(usage);
    return 0;
  }
  const addr = values.addr ?? '127.0.0.1:9091';
  const timeoutMs = Number(values['timeout-ms'] ?? 10_000);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    process.stderr.write('walrus-cli: --timeout-ms must be a positive integer\n');
    return 2;
  }
  let client: TextClient;
  try {
    client = new TextClient(addr, { timeoutMs });
  } catch (error) {
    process.stderr.write(`walrus-cli: ${(error as Error).message}\n`);
    return 2;
  }
  const secret = values['cluster-secret'] || process.env['WALRUS_CLUSTER_SECRET'] || null;
  let access: NodeAccess;
  try {
    access = nodeAccessOf(values);
  } catch (error) {
    process.stderr.write(`walrus-cli: ${(error as Error).message}\n`);
    return 2;
  }
  const ctx: CliContext = {
    addr,
    timeoutMs,
    clusterSecret: secret,
    access,
    json: values.json === true,
    out: (text) => process.stdout.write(`${text}\n`),
  };
  if (positionals[0] === 'remove-node') {
    await client.close();
    return removeNode(addr, positionals.slice(1), timeoutMs, secret, access);
  }
  if (operatorCommands.has(positionals[0] ?? '')) {
    await client.close();
    return operatorCommand(ctx, positionals, values);
  }
  try {
    return positionals.length > 0 ? await oneOff(client, positionals) : await shell(client, addr, ctx);
  } catch (error) {
    process.stderr.write(`walrus-cli: cannot talk to ${addr}: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`walrus-cli: ${String(error)}\n`);
    process.exit(1);
  },
);
