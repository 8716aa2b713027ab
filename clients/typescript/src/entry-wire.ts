/**
 * Transcript reads without the generic decoder: the hot path of `read`.
 *
 * A ReadTranscript batch carries hundreds of entries per message, and
 * protobuf-es decodes by reflection, building a message per entry and per
 * Timestamp: that made the Node client read slower than the Python one (see
 * bench/RESULTS.md, "typescript"). Here the stream is opened through a copy of
 * TranscriptService whose `ReadTranscriptResponse.Batch.entries` is declared
 * `repeated bytes`: on the wire an embedded message and a bytes field are the
 * same (length-delimited, wire type 2), so Connect hands over each entry's
 * bytes, and {@link decodeEntry} reads them straight into the client's plain
 * `Entry`, declared here so that transcripts.ts imports this module and not the
 * other way round. Everything else about the call (transport, metadata, errors)
 * is Connect's, unchanged. The server does the mirror image: it stores each
 * entry's wire form and sends those bytes as they are (core/entry_wire.py).
 */
import {
  type DescService,
  clone,
  createFileRegistry,
  fromBinary,
  toJson,
} from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  StructSchema,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
} from "@bufbuild/protobuf/wkt";
import type { JsonObject } from "./convert.js";
import { file_strata_v1_records } from "./gen/strata/v1/records_pb.js";
import { TranscriptService, file_strata_v1_transcripts } from "./gen/strata/v1/transcripts_pb.js";

/** One entry of a transcript. */
export interface Entry {
  /** Its position: 1 for the first entry, then +1 with no gap. */
  seq: number;
  /** Who or what produced it, e.g. "user", "assistant", "tool"; may be empty. */
  role: string;
  /** Its text. */
  content: string;
  /** Its structured data, if any. */
  data?: JsonObject;
  /** When it was appended. */
  createTime: Date;
}

/**
 * TranscriptService as the generated one, but for `ReadTranscriptResponse.Batch.entries`,
 * which arrive as the bytes of each entry.
 */
export const TranscriptServiceRawEntries: DescService = rawEntriesService();

function rawEntriesService(): DescService {
  const file = clone(FileDescriptorProtoSchema, file_strata_v1_transcripts.proto);
  const response = file.messageType.find((message) => message.name === "ReadTranscriptResponse");
  const batch = response?.nestedType.find((message) => message.name === "Batch");
  const entries = batch?.field.find((field) => field.name === "entries");
  if (entries === undefined) throw new Error("ReadTranscriptResponse.Batch.entries is gone");
  entries.type = FieldDescriptorProto_Type.BYTES;
  entries.typeName = "";
  // Every file transcripts.proto imports, and theirs (records.proto: Transcript.parent).
  const imports = [
    file_google_protobuf_empty,
    file_google_protobuf_field_mask,
    file_google_protobuf_struct,
    file_google_protobuf_timestamp,
    file_strata_v1_records,
  ];
  const registry = createFileRegistry(file, (name) => imports.find((dep) => dep.name === name.replace(/\.proto$/, "")));
  const service = registry.getService(TranscriptService.typeName);
  if (service === undefined) throw new Error("TranscriptService is missing from its own file");
  return service;
}

/** One entry (a `strata.v1.Entry` message's bytes) as the client's plain Entry. */
export function decodeEntry(bytes: Uint8Array): Entry {
  const reader = new BinaryReader(bytes);
  let seq = 0;
  let role = "";
  let content = "";
  let data: JsonObject | undefined;
  let createTime = 0;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) {
      seq = varint(reader, bytes);
    } else if (field === 2 && wireType === WireType.LengthDelimited) {
      role = reader.string();
    } else if (field === 3 && wireType === WireType.LengthDelimited) {
      content = reader.string();
    } else if (field === 4 && wireType === WireType.LengthDelimited) {
      data = toJson(StructSchema, fromBinary(StructSchema, reader.bytes())) as JsonObject;
    } else if (field === 5 && wireType === WireType.LengthDelimited) {
      createTime = timestampMs(reader, bytes, reader.uint32() + reader.pos);
    } else {
      reader.skip(wireType);
    }
  }
  const entry: Entry = { seq, role, content, createTime: new Date(createTime) };
  if (data !== undefined) entry.data = data;
  return entry;
}

/**
 * A google.protobuf.Timestamp's fields in `bytes`, from the reader's position up
 * to `end`, as milliseconds since the
 * epoch (rounded as protobuf-es's timestampMs does).
 */
function timestampMs(reader: BinaryReader, bytes: Uint8Array, end: number): number {
  let seconds = 0;
  let nanos = 0;
  while (reader.pos < end) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) seconds = varint(reader, bytes);
    else if (field === 2 && wireType === WireType.Varint) nanos = reader.int32();
    else reader.skip(wireType);
  }
  return seconds * 1000 + Math.round(nanos / 1_000_000);
}

/**
 * The int64 varint at the reader's position (in `bytes`, the reader's buffer) as
 * a number, without a bigint: seqs and seconds are positive and far below 2^53.
 * A longer one (a negative number takes ten bytes) goes the generic way.
 */
function varint(reader: BinaryReader, bytes: Uint8Array): number {
  const start = reader.pos;
  let value = 0;
  let scale = 1;
  for (let index = 0; index < 8; index++) {
    const byte = bytes[reader.pos++] as number;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return value;
    scale *= 128;
  }
  reader.pos = start;
  return Number(reader.int64());
}
