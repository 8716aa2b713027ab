/**
 * Artifacts: large blobs, streamed both ways (ArtifactService): `client.artifacts`.
 *
 *     const log = await client.artifacts.upload("./build.log", { owner: "executions/ex-42", kind: "log" });
 *     await client.artifacts.download(log.id, "./copy.log");        // checked against its sha256
 *     const { body } = await client.artifacts.open(log.id, { offset: 1024, limit: 4096 });
 *
 * Uploads go in 1 MiB chunks, read as they are sent, so memory stays bounded by
 * the chunk size whatever the payload. A source that can be read twice (a path or
 * a Uint8Array) is hashed first and `FindMissingBlobs` asked: content the server
 * already stores for the namespace is not sent again. A one-pass source (a
 * Readable, an async iterable) is hashed while it streams and the server's sha256
 * checked against it.
 */
import { create } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { basename, extname } from "node:path";
import { Readable } from "node:stream";
import {
  type ByteSource,
  type ByteTarget,
  chunksOf,
  counted,
  writeTo,
} from "./bytes.js";
import type { CallOptions, Connection } from "./connection.js";
import { paginate } from "./connection.js";
import { requiredDate, toDuration } from "./convert.js";
import { DataLossError, toStrataError } from "./errors.js";
import {
  type Artifact as ArtifactMessage,
  ArtifactHeaderSchema,
  ArtifactService,
  Compression,
  type UploadArtifactRequest,
  UploadArtifactRequestSchema,
} from "./gen/strata/v1/artifacts_pb.js";

/** How the server stores an artifact's bytes (downloads are always the original bytes). */
export type CompressionName = "none" | "zstd";

/** A stored blob and what it is. */
export interface Artifact {
  namespace: string;
  /** Server-assigned id; ids sort by creation. */
  id: string;
  /** The record or entity the artifact belongs to, e.g. "executions/ex-42". */
  owner: string;
  /** What it is, e.g. "log" or "diff". */
  kind: string;
  /** A file name for the content. */
  name: string;
  /** The MIME type of the content. */
  contentType: string;
  /** Lowercase hex SHA-256 of the content. */
  sha256: string;
  /** Content size in bytes. */
  size: number;
  /** Bytes the content takes in the blob store (shared by identical content). */
  storedSize: number;
  compression: CompressionName;
  labels: { [key: string]: string };
  createTime: Date;
  /** The record it belongs to; undefined when none. */
  parent?: { collection: string; id: string };
}

/** The artifact a `strata.v1.Artifact` message describes. */
export function artifactFromProto(message: ArtifactMessage): Artifact {
  const artifact: Artifact = {
    namespace: message.namespace,
    id: message.id,
    owner: message.owner,
    kind: message.kind,
    name: message.name,
    contentType: message.contentType,
    sha256: message.sha256,
    size: Number(message.size),
    storedSize: Number(message.storedSize),
    compression: message.compression === Compression.ZSTD ? "zstd" : "none",
    labels: { ...message.labels },
    createTime: requiredDate(message.createTime),
  };
  if (message.parent !== undefined) {
    artifact.parent = { collection: message.parent.collection, id: message.parent.id };
  }
  return artifact;
}

/** Called as bytes move: bytes so far, and the total when known. */
export type Progress = (done: number, total: number | undefined) => void;

/** What `upload` reads: a file path, bytes, or a stream of bytes. */
export type UploadSource = ByteSource;

/** What `upload` takes. */
export interface UploadOptions extends CallOptions {
  /** The record or entity the artifact belongs to: 1-256 printable characters. */
  owner: string;
  /** What it is: a letter, then up to 63 letters, digits, `_` or `-`. */
  kind: string;
  /** A file name; default the path's base name, else "artifact". */
  name?: string;
  /** The MIME type; default a guess from the name, else the server's octet-stream. */
  contentType?: string;
  labels?: { [key: string]: string };
  /** An idempotency key: a retry with it returns the first result. */
  requestId?: string;
  /** The record it belongs to (deleting that record then refuses or cascades). */
  parent?: { collection: string; id: string };
  /** Called as bytes are sent. */
  onProgress?: Progress;
}

/** What `download` and `open` take. */
export interface RangeOptions extends CallOptions {
  /** First byte to send; default 0. */
  offset?: number;
  /** Most bytes to send; 0 or absent: to the end. */
  limit?: number;
}

/** An artifact's metadata and a stream of its bytes (or of the range asked). */
export interface ArtifactStream {
  artifact: Artifact;
  /** The bytes; a whole download errors with DataLossError if they do not hash to `artifact.sha256`. */
  body: Readable;
}

const TYPES: { [extension: string]: string } = {
  ".log": "text/plain",
  ".txt": "text/plain",
  ".md": "text/markdown",
  ".csv": "text/csv",
  ".html": "text/html",
  ".diff": "text/x-diff",
  ".patch": "text/x-diff",
  ".json": "application/json",
  ".ndjson": "application/x-ndjson",
  ".xml": "application/xml",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".gz": "application/gzip",
  ".tar": "application/x-tar",
  ".zst": "application/zstd",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".svg": "image/svg+xml",
};

/** The artifacts of one namespace: `client.artifacts`. */
export class Artifacts {
  constructor(
    private readonly connection: Connection,
    /** The namespace. */
    readonly namespace: string,
  ) {}

  private get service() {
    return this.connection.client(ArtifactService);
  }

  /**
   * Upload `source` (a file path, a Uint8Array, a Readable or an async iterable
   * of bytes) as an artifact of `owner` and `kind`, and return it. Throws
   * InvalidArgumentError, ResourceExhaustedError (too large), DataLossError
   * (the server stored other bytes than were read), UnavailableError.
   */
  async upload(source: UploadSource, options: UploadOptions): Promise<Artifact> {
    const name = options.name ?? (typeof source === "string" ? basename(source) : "artifact");
    const header = create(ArtifactHeaderSchema, {
      namespace: this.namespace,
      owner: options.owner,
      kind: options.kind,
      name,
      contentType: options.contentType ?? TYPES[extname(name).toLowerCase()] ?? "",
      labels: options.labels ?? {},
      requestId: options.requestId ?? "",
      parent: options.parent,
    });
    const progress = options.onProgress;
    if (typeof source === "string" || source instanceof Uint8Array) {
      const known = typeof source === "string" ? await hashFile(source) : hashBytes(source);
      header.sha256 = known.sha256;
      header.size = BigInt(known.size);
      const [missing] = await this.findMissingBlobs([known.sha256], options);
      if (missing === undefined) {
        try {
          const stored = await this.send(header, undefined, options);
          progress?.(known.size, known.size);
          return stored;
        } catch (error) {
          // Removed since FindMissingBlobs answered: send the bytes after all.
          if (toStrataError(error).reason !== "BLOB_NOT_FOUND") throw error;
        }
      }
      return this.send(header, counted(chunksOf(source), known.size, progress), options);
    }
    const hash = createHash("sha256");
    const artifact = await this.send(
      header,
      counted(hashed(chunksOf(source), hash), undefined, progress),
      options,
    );
    const sent = hash.digest("hex");
    if (artifact.sha256 !== sent) {
      throw new DataLossError(
        `artifact ${artifact.id} was stored with sha256 ${artifact.sha256}, but the bytes sent hash to ${sent}`,
      );
    }
    return artifact;
  }

  /**
   * Download an artifact's content, or `limit` bytes from `offset`, into
   * `target`: a path (written beside it, renamed into place once complete and
   * correct) or a Writable (not ended when done). A whole download is checked
   * against the artifact's sha256 (DataLossError if it differs). Returns the
   * artifact. Throws NotFoundError, OutOfRangeError, InvalidArgumentError.
   */
  async download(
    id: string,
    target: ByteTarget,
    options: RangeOptions & { onProgress?: Progress } = {},
  ): Promise<Artifact> {
    const { artifact, body } = await this.open(id, options);
    const total = rangeSize(artifact, options);
    await writeTo(target, counted(body, total, options.onProgress));
    return artifact;
  }

  /**
   * Open an artifact's content (or a range of it) as a stream: resolves once
   * the server has sent the artifact's metadata, with `body` streaming the bytes.
   */
  async open(id: string, options: RangeOptions = {}): Promise<ArtifactStream> {
    const offset = options.offset ?? 0;
    const limit = options.limit ?? 0;
    const request = { namespace: this.namespace, id, offset: BigInt(offset), limit: BigInt(limit) };
    const messages = this.connection
      .stream((call) => this.service.downloadArtifact(request, call), options)
      [Symbol.asyncIterator]();
    const first = await messages.next();
    if (first.done || first.value.part.case !== "artifact") {
      await messages.return();
      throw new DataLossError("the download stream did not start with the artifact's metadata");
    }
    const artifact = artifactFromProto(first.value.part.value);
    const whole = offset === 0 && limit === 0;
    const expected = rangeSize(artifact, { offset, limit });
    async function* bytes(): AsyncGenerator<Uint8Array, void, undefined> {
      const hash = createHash("sha256");
      let received = 0;
      for (;;) {
        const next = await messages.next();
        if (next.done) break;
        if (next.value.part.case !== "chunk") continue;
        const chunk = next.value.part.value;
        received += chunk.length;
        if (whole) hash.update(chunk);
        yield chunk;
      }
      if (received !== expected || (whole && hash.digest("hex") !== artifact.sha256)) {
        throw new DataLossError(
          `the downloaded bytes of artifact ${artifact.id} do not match its sha256 and size ` +
            `(${received} of ${expected} bytes)`,
        );
      }
    }
    const body = Readable.from(bytes(), { objectMode: false });
    return { artifact, body };
  }

  /** One artifact's metadata. Throws NotFoundError. */
  async get(id: string, options: CallOptions = {}): Promise<Artifact> {
    const request = { namespace: this.namespace, id };
    const message = await this.connection.unary(
      (call) => this.service.getArtifact(request, call),
      { idempotent: true },
      options,
    );
    return artifactFromProto(message);
  }

  /** Iterate over the artifacts, oldest first, optionally of one owner, kind and parent. */
  list(
    options: CallOptions & {
      owner?: string;
      kind?: string;
      parent?: { collection: string; id: string };
      pageSize?: number;
    } = {},
  ): AsyncGenerator<Artifact, void, undefined> {
    return paginate(async (pageToken) => {
      const request = {
        namespace: this.namespace,
        owner: options.owner ?? "",
        kind: options.kind ?? "",
        parent: options.parent,
        pageSize: options.pageSize ?? 0,
        pageToken,
      };
      const response = await this.connection.unary(
        (call) => this.service.listArtifacts(request, call),
        { idempotent: true },
        options,
      );
      return {
        items: response.artifacts.map(artifactFromProto),
        nextPageToken: response.nextPageToken,
      };
    });
  }

  /** Delete an artifact (its content goes once no artifact names it). Throws NotFoundError. */
  async delete(id: string, options: CallOptions = {}): Promise<void> {
    const request = { namespace: this.namespace, id };
    await this.connection.unary(
      (call) => this.service.deleteArtifact(request, call),
      { idempotent: false },
      options,
    );
  }

  /** Which of these SHA-256s the namespace does not store yet (at most 1000). */
  async findMissingBlobs(sha256s: string[], options: CallOptions = {}): Promise<string[]> {
    const request = { namespace: this.namespace, sha256s };
    const response = await this.connection.unary(
      (call) => this.service.findMissingBlobs(request, call),
      { idempotent: true },
      options,
    );
    return response.missingSha256s;
  }

  /**
   * A presigned HTTP GET URL of the artifact's stored bytes, valid for
   * `expiryMs` (default 1 hour). Throws FailedPreconditionError (reason
   * PRESIGNED_URLS_UNSUPPORTED) on the local-disk blob store.
   */
  async url(
    id: string,
    options: CallOptions & { expiryMs?: number } = {},
  ): Promise<{ url: string; expireTime: Date; compression: CompressionName }> {
    const request = {
      namespace: this.namespace,
      id,
      expiry: toDuration(options.expiryMs, "expiryMs"),
    };
    const response = await this.connection.unary(
      (call) => this.service.getArtifactUrl(request, call),
      { idempotent: true },
      options,
    );
    return {
      url: response.url,
      expireTime: requiredDate(response.expireTime),
      compression: response.compression === Compression.ZSTD ? "zstd" : "none",
    };
  }

  /** One UploadArtifact call: the header, then the chunks (none: the server has the content). */
  private async send(
    header: ReturnType<typeof create<typeof ArtifactHeaderSchema>>,
    chunks: AsyncIterable<Uint8Array> | undefined,
    options: CallOptions,
  ): Promise<Artifact> {
    async function* messages(): AsyncGenerator<UploadArtifactRequest> {
      yield create(UploadArtifactRequestSchema, { part: { case: "header", value: header } });
      if (chunks === undefined) return;
      for await (const chunk of chunks) {
        yield create(UploadArtifactRequestSchema, { part: { case: "chunk", value: chunk } });
      }
    }
    const message = await this.connection.unary(
      (call) => this.service.uploadArtifact(messages(), call),
      { idempotent: false, once: true },
      options,
    );
    return artifactFromProto(message);
  }
}

function rangeSize(artifact: Artifact, options: { offset?: number; limit?: number }): number {
  const offset = options.offset ?? 0;
  const limit = options.limit ?? 0;
  const end = limit === 0 ? artifact.size : Math.min(artifact.size, offset + limit);
  return Math.max(0, end - offset);
}

async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of chunksOf(path)) {
    hash.update(chunk);
    size += chunk.length;
  }
  const info = await stat(path);
  if (info.size !== size) throw new Error(`${path} changed while it was read`);
  return { sha256: hash.digest("hex"), size };
}

function hashBytes(bytes: Uint8Array): { sha256: string; size: number } {
  return { sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length };
}




async function* hashed(
  chunks: AsyncIterable<Uint8Array>,
  hash: ReturnType<typeof createHash>,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    hash.update(chunk);
    yield chunk;
  }
}

