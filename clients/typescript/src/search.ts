/**
 * One ranked search across kinds (SearchService): records, transcript entries,
 * artifacts by name and labels, and the text of text artifacts.
 *
 *     for await (const hit of client.search("timeout", { kinds: ["record", "transcript_entry"] })) {
 *       if (hit.kind === "record") console.log(hit.collection, hit.id, hit.snippet);
 *       else if (hit.kind === "transcript_entry") console.log(hit.transcriptId, hit.seq);
 *     }
 *
 * Each hit says what matched by kind (a discriminated union), so a caller can
 * read the item with the matching service: `records(collection).get(id)`,
 * `transcripts.read(transcriptId, { fromSeq: seq })`, `artifacts.get(artifactId)`.
 */
import type { CallOptions, Connection } from "./connection.js";
import { paginate } from "./connection.js";
import { requiredDate, toTimestamp } from "./convert.js";
import {
  SearchKind,
  type SearchResult,
  SearchService,
} from "./gen/strata/v1/search_pb.js";

/**
 * What a hit is: a record (its data's strings matched), a transcript entry (its
 * content), an artifact (its name or labels) or an artifact's text content.
 */
export type SearchKindName = "record" | "transcript_entry" | "artifact" | "artifact_text";

/** What every hit carries, whatever its kind. */
interface HitBase {
  /** Relevance in (0, 1]: each kind's best hit scores 1; comparable only within one search. */
  score: number;
  /** The matched text around the matches, each match between `**`. */
  snippet: string;
  /** The owner of the data (the transcript's for an entry). */
  owner: string;
  /** A record's update time, an entry's or an artifact's create time. */
  time: Date;
}

/** A record that matched. */
export interface RecordSearchHit extends HitBase {
  kind: "record";
  collection: string;
  id: string;
}

/** A transcript entry that matched. */
export interface EntrySearchHit extends HitBase {
  kind: "transcript_entry";
  transcriptId: string;
  seq: number;
}

/** An artifact whose name or labels ("artifact") or text ("artifact_text") matched. */
export interface ArtifactSearchHit extends HitBase {
  kind: "artifact" | "artifact_text";
  artifactId: string;
  name: string;
}

/** One thing that matched a search; `kind` says which fields name it. */
export type SearchHit = RecordSearchHit | EntrySearchHit | ArtifactSearchHit;

/** What `client.search` takes besides the query. */
export interface SearchOptions extends CallOptions {
  /** Only hits of these kinds; absent or empty: every kind. */
  kinds?: SearchKindName[];
  /** Only records of these collections (other kinds are not narrowed by it). */
  collections?: string[];
  /** Only data of this owner. */
  owner?: string;
  /** Only hits whose `time` is at or after this. */
  startTime?: Date;
  /** Only hits whose `time` is before this. */
  endTime?: Date;
  /** Hits per page fetched (0 or absent: the server's default, 20). */
  pageSize?: number;
}

const KINDS: { [name in SearchKindName]: SearchKind } = {
  record: SearchKind.RECORD,
  transcript_entry: SearchKind.TRANSCRIPT_ENTRY,
  artifact: SearchKind.ARTIFACT,
  artifact_text: SearchKind.ARTIFACT_TEXT,
};

/** The enum value of a kind name; TypeError for a name it does not know. */
function kindValue(name: SearchKindName): SearchKind {
  const value = Object.hasOwn(KINDS, name) ? KINDS[name] : undefined;
  if (value === undefined) throw new TypeError(`unknown search kind ${String(name)}`);
  return value;
}

/** The hit a `strata.v1.SearchResult` message describes. */
export function searchHitFromProto(message: SearchResult): SearchHit {
  const base = {
    score: message.score,
    snippet: message.snippet,
    owner: message.owner,
    time: requiredDate(message.time),
  };
  const target = message.target;
  switch (target.case) {
    case "record":
      return { kind: "record", collection: target.value.collection, id: target.value.id, ...base };
    case "entry":
      return {
        kind: "transcript_entry",
        transcriptId: target.value.transcriptId,
        seq: Number(target.value.seq),
        ...base,
      };
    case "artifact":
      return {
        kind: message.kind === SearchKind.ARTIFACT_TEXT ? "artifact_text" : "artifact",
        artifactId: target.value.id,
        name: target.value.name,
        ...base,
      };
    default:
      throw new TypeError("a search hit of a kind this client does not know");
  }
}

/**
 * The hits of `query` across kinds, best first, a page at a time as the
 * iteration reaches it (`StrataClient.search`).
 */
export function search(
  connection: Connection,
  namespace: string,
  query: string,
  options: SearchOptions = {},
): AsyncGenerator<SearchHit, void, undefined> {
  const fields = {
    namespace,
    query,
    kinds: (options.kinds ?? []).map(kindValue),
    collections: options.collections ?? [],
    owner: options.owner ?? "",
    startTime: toTimestamp(options.startTime, "startTime"),
    endTime: toTimestamp(options.endTime, "endTime"),
    pageSize: options.pageSize ?? 0,
  };
  const service = connection.client(SearchService);
  return paginate(async (pageToken) => {
    const response = await connection.unary(
      (call) => service.search({ ...fields, pageToken }, call),
      { idempotent: true },
      options,
    );
    return { items: response.hits.map(searchHitFromProto), nextPageToken: response.nextPageToken };
  });
}
