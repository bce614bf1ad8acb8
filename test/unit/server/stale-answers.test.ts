/**
 * Answers a node must not give from state it cannot vouch for, both found by the whole-node
 * simulator: TOPIC_NOT_FOUND for a topic its lagging metadata lacks when it cannot catch up with
 * the Raft leader (it answers UNAVAILABLE: retry), and answers to forwarded requests while it
 * starts, before its topics are recovered from the WAL.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { Controller } from '../../../node/controller/controller.js';
import { MetadataState } from '../../../node/metadata/metadata-state.js';
import { decodeReply, encodeRequest } from '../../../node/protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { RequestHandler, type ReplyChannel } from '../../../node/server/request-handler.js';
import type { ClusterView } from '../../../node/topics/ports.js';
import { TopicService } from '../../../node/topics/topic-service.js';
import { Wal } from '../../../node/wal/index.js';
import { CapturingLogger } from '../../helpers/topic-harness.js';

interface Lagging {
  answer: () => Promise<string>;
  forwarded: () => Promise<string>;
  close: () => Promise<void>;
}

async function lagging(catchUp: () => Promise<void>, ready?: () => boolean): Promise<Lagging> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-stale-'));
  const logger = new CapturingLogger();
  const wal = await Wal.open({
    rootDir: dir,
    fsyncPolicy: { kind: 'always' },
    segmentPreallocateBytes: 64 * 1024,
  });
  const state = new MetadataState(); // has not applied the topic's creation yet
  const refuse = (): Promise<never> =>
    Promise.reject(new WalrusError(ErrorCode.NOT_LEADER, 'not the leader'));
  const meta = { state, propose: refuse, readBarrier: refuse };
  const cluster: ClusterView = {
    raftLeaderId: () => 2,
    voters: () => [1, 2, 3],
    aliveVoters: () => [1],
    removeNode: () => Promise.resolve(false),
    handLeadershipAway: () => Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, 'not the leader')),
    reachable: (nodeId: number) => nodeId === 1,
    catchUpWithLeader: catchUp,
    forwardRaw: () => Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, 'unreachable')),
    replicate: () => Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, 'unreachable')),
    forward: () => Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, 'unreachable')),
  };
  const topics = new TopicService({
    nodeId: 1,
    wal,
    meta,
    cluster,
    segmentEntryCountMax: 100,
    retentionDefault: { retentionMs: null, retentionBytes: null },
    nowMs: Date.now,
    logger,
  });
  const controller = new Controller({
    nodeId: 1,
    state,
    isRaftLeader: () => false,
    voters: () => [1, 2, 3],
    aliveVoters: () => [1],
    propose: refuse,
    repairSegment: () => Promise.resolve(false),
    repairAfterMs: 60_000,
    delay: () => Promise.resolve(),
    ensureCopy: () => Promise.resolve(false),
    recoverSegment: () => Promise.resolve(false),
    nowMs: Date.now,
    logger,
  });
  const handler = new RequestHandler({
    topics,
    controller,
    cluster,
    nodeId: 1,
    clientAddr: '127.0.0.1:1',
    metricsJson: () => ({}),
    logger,
    ...(ready === undefined ? {} : { ready }),
  });
  const appendFrame = encodeRequest(7, { op: 'append', topic: 't', records: [{ value: Buffer.from('x') }] });
  const answer = (): Promise<string> =>
    new Promise((resolve) => {
      const conn: ReplyChannel = {
        id: 1,
        closed: false,
        close: () => {},
        send: (payload) => {
          const reply = decodeReply(Buffer.from(payload));
          resolve(reply.kind === 'error' ? reply.error.code : reply.kind);
        },
      };
      handler.onFrame(conn, appendFrame);
    });
  const forwarded = async (): Promise<string> => {
    const reply = decodeReply(await handler.executeForwarded(appendFrame));
    return reply.kind === 'error' ? reply.error.code : reply.kind;
  };
  return {
    answer,
    forwarded,
    close: async () => {
      await wal.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a lagging node that cannot reach the Raft leader answers UNAVAILABLE, not TOPIC_NOT_FOUND', async (t) => {
  const node = await lagging(() =>
    Promise.reject(new WalrusError(ErrorCode.TIMEOUT, 'no reply from the leader')),
  );
  t.is(await node.answer(), ErrorCode.UNAVAILABLE);
  await node.close();
});

test('a node that caught up with the leader and still lacks the topic answers TOPIC_NOT_FOUND', async (t) => {
  const node = await lagging(() => Promise.resolve());
  t.is(await node.answer(), ErrorCode.TOPIC_NOT_FOUND);
  await node.close();
});

test('a starting node answers forwarded requests UNAVAILABLE until its topics are recovered', async (t) => {
  // Found by the whole-node simulator: a segment leader restarting answered a forwarded read from a
  // topic table that did not yet know the acknowledged end (an empty read below it).
  let recovered = false;
  const node = await lagging(
    () => Promise.resolve(),
    () => recovered,
  );
  t.is(await node.forwarded(), ErrorCode.UNAVAILABLE);
  recovered = true;
  t.is(await node.forwarded(), ErrorCode.TOPIC_NOT_FOUND, 'then it executes them');
  await node.close();
});
