/**
 * The frontend's admin service over plain gRPC (cluster membership, shard owners): a small protobuf encoder, since the SDK has no admin client.
 * @module
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Frontend } from './types';

// --- the frontend's admin service, over plain gRPC -------------------------------------------
// The TypeScript SDK has no client for temporal.server.api.adminservice; these two calls need only a
// few protobuf fields, encoded and decoded here.

export const ADMIN_SERVICE = '/temporal.server.api.adminservice.v1.AdminService';

export function adminCall(frontend: Frontend, method: string, request: Buffer): Promise<Buffer> {
  const { tls } = frontend;
  const client = tls
    ? new grpc.Client(frontend.address, grpc.credentials.createSsl(readFileSync(tls.caFile), readFileSync(tls.keyFile), readFileSync(tls.certFile)), {
        'grpc.ssl_target_name_override': tls.serverName,
      })
    : new grpc.Client(frontend.address, grpc.credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      `${ADMIN_SERVICE}/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      { deadline: Date.now() + 5000 },
      (err, value) => (err ? reject(err) : resolve(value!)),
    );
  }).finally(() => client.close());
}

/** Protobuf wire format: the fields of `buf` by number (varints as numbers, length-delimited as bytes). */
export function decodeFields(buf: Buffer): Map<number, (number | Buffer)[]> {
  const fields = new Map<number, (number | Buffer)[]>();
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = buf[pos++];
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    let value: number | Buffer;
    switch (tag & 7) {
      case 0: value = varint(); break;
      case 1: value = buf.subarray(pos, pos + 8); pos += 8; break;
      case 2: { const len = varint(); value = buf.subarray(pos, pos + len); pos += len; break; }
      case 5: value = buf.subarray(pos, pos + 4); pos += 4; break;
      default: throw new Error(`unsupported protobuf wire type ${tag & 7}`);
    }
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  return fields;
}

export function encodeVarint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

export const str = (v: number | Buffer | undefined) => (Buffer.isBuffer(v) ? v.toString('utf8') : '');

/** `DescribeCluster`: membership rings (role, member count). */
export async function describeClusterRings(frontend: Frontend): Promise<{ role: string; memberCount: number }[]> {
  const res = decodeFields(await adminCall(frontend, 'DescribeCluster', Buffer.alloc(0)));
  const membership = res.get(3)?.[0]; // membership_info
  if (!Buffer.isBuffer(membership)) return [];
  return (decodeFields(membership).get(3) ?? []).filter((v): v is Buffer => Buffer.isBuffer(v)).map((ring) => {
    const f = decodeFields(ring);
    return { role: str(f.get(1)?.[0]), memberCount: Number(f.get(2)?.[0] ?? 0) };
  });
}

/** `DescribeHistoryHost` per shard: the address of the history host that owns it. */
export async function historyShardOwners(frontend: Frontend, shards: number): Promise<Map<string, number[]>> {
  const owners = new Map<string, number[]>();
  for (let shard = 1; shard <= shards; shard++) {
    const res = decodeFields(await adminCall(frontend, 'DescribeHistoryHost', Buffer.from([0x10, ...encodeVarint(shard)]))); // shard_id = 2
    const host = str(res.get(5)?.[0]); // address = 5
    owners.set(host, [...(owners.get(host) ?? []), shard]);
  }
  return owners;
}
