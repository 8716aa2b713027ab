/**
 * Streams of bytes in and out of the client: what artifact uploads and
 * downloads and namespace export/import share. Everything moves in chunks of at
 * most {@link CHUNK_SIZE}, pulled as the network takes them, so memory is
 * bounded by the chunk size whatever the payload.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

/** Bytes per message sent: large enough to keep per-message costs small. */
export const CHUNK_SIZE = 1 << 20;

/** Something to read bytes from: a file path, bytes, or a stream of bytes. */
export type ByteSource = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/** Something to write bytes to: a file path, or a Writable (left open). */
export type ByteTarget = string | Writable;

/** The chunks of a source, each at most CHUNK_SIZE bytes. */
export function chunksOf(source: ByteSource): AsyncIterable<Uint8Array> {
  if (typeof source === "string") return createReadStream(source, { highWaterMark: CHUNK_SIZE });
  if (source instanceof Uint8Array) return byteChunks(source);
  return rechunk(source);
}

async function* byteChunks(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += CHUNK_SIZE) {
    yield bytes.subarray(at, at + CHUNK_SIZE);
  }
}

/** Pieces of at most CHUNK_SIZE bytes; small pieces are gathered up to it. */
async function* rechunk(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const item of source) {
    const piece = typeof item === "string" ? Buffer.from(item) : item;
    for (let at = 0; at < piece.length; ) {
      const take = Math.min(piece.length - at, CHUNK_SIZE - pendingBytes);
      pending.push(piece.subarray(at, at + take));
      pendingBytes += take;
      at += take;
      if (pendingBytes === CHUNK_SIZE) {
        yield pending.length === 1 ? (pending[0] as Uint8Array) : Buffer.concat(pending);
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending);
}

/**
 * Write `chunks` to `target`: a path is written beside itself and renamed into
 * place only once every chunk arrived (and removed on failure); a Writable gets
 * the chunks with backpressure and is not ended.
 */
export async function writeTo(
  target: ByteTarget,
  chunks: AsyncIterable<Uint8Array>,
): Promise<void> {
  if (typeof target !== "string") {
    await pipeline(chunks, target, { end: false });
    return;
  }
  const temporary = join(dirname(target), `.${basename(target)}.${process.pid}.part`);
  try {
    await pipeline(chunks, createWriteStream(temporary));
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Pass chunks through, telling `progress` how many bytes went so far. */
export async function* counted(
  chunks: AsyncIterable<Uint8Array>,
  total: number | undefined,
  progress: ((done: number, total: number | undefined) => void) | undefined,
): AsyncGenerator<Uint8Array> {
  let done = 0;
  for await (const chunk of chunks) {
    yield chunk;
    done += chunk.length;
    progress?.(done, total);
  }
}
