/**
 * Plain JavaScript values to and from the well-known protobuf types the API uses.
 *
 * protobuf-es already maps `google.protobuf.Struct` fields to plain JSON objects.
 * What is left: `int64` fields arrive as `bigint` and are handed out as `number`
 * (every Strata count, version and seq stays far below 2^53), timestamps become
 * `Date`s, and durations are given and returned in milliseconds.
 */
import type { JsonObject, JsonValue, Message } from "@bufbuild/protobuf";
import {
  type Duration,
  type Timestamp,
  durationFromMs,
  durationMs,
  timestampDate,
  timestampFromDate,
} from "@bufbuild/protobuf/wkt";

/** A JSON object, as records' data, jobs' payloads and entries' data hold. */
export type { JsonObject, JsonValue };

/** A Date as a Timestamp; undefined stays undefined. */
export function toTimestamp(value: Date | undefined, name = "time"): Timestamp | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new TypeError(`${name} must be a valid Date`);
  }
  return timestampFromDate(value);
}

/** Milliseconds as a Duration; undefined stays undefined. */
export function toDuration(ms: number | undefined, name = "duration"): Duration | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new TypeError(`${name} must be a finite number of milliseconds`);
  }
  return durationFromMs(ms);
}

/** A Timestamp as a Date; unset stays undefined. */
export function fromTimestamp(value: Timestamp | undefined): Date | undefined {
  return value === undefined ? undefined : timestampDate(value);
}

/** A Timestamp the server always sets, as a Date (the epoch if it is missing). */
export function requiredDate(value: Timestamp | undefined): Date {
  return value === undefined ? new Date(0) : timestampDate(value);
}

/** A Duration as milliseconds; unset stays undefined. */
export function fromDuration(value: Duration | undefined): number | undefined {
  return value === undefined ? undefined : durationMs(value);
}

/** A number or bigint as the bigint an int64 field takes (integers only). */
export function toInt64(value: number | bigint | undefined, name: string): bigint {
  if (value === undefined) return 0n;
  if (typeof value === "bigint") return value;
  if (!Number.isSafeInteger(value)) throw new TypeError(`${name} must be an integer`);
  return BigInt(value);
}

/** A JSON object, checked: what a Struct field can carry. */
export function toStruct(value: unknown, name: string): JsonObject {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${name} must be a JSON object`);
  }
  return value as JsonObject;
}

/** An empty string as undefined: proto3 strings cannot be unset. */
export function optionalString(value: string): string | undefined {
  return value === "" ? undefined : value;
}

/**
 * A generated message as plain values: no `$typeName`, `int64` as `number`,
 * Timestamp as `Date`, Duration as milliseconds; nested messages, lists, maps
 * and oneofs likewise. Struct fields stay the JSON objects they are.
 */
export type Plain<T> = T extends bigint
  ? number
  : T extends Timestamp
    ? Date
    : T extends Duration
      ? number
      : T extends Uint8Array
        ? Uint8Array
        : T extends readonly (infer U)[]
          ? Plain<U>[]
          : T extends Message
            ? { [K in keyof T as K extends "$typeName" | "$unknown" ? never : K]: Plain<T[K]> }
            : T extends JsonObject
              ? T
              : T extends object
                ? { [K in keyof T]: Plain<T[K]> }
                : T;

/** {@link Plain} at run time. */
export function plain<T>(value: T): Plain<T> {
  return convert(value) as Plain<T>;
}

function convert(value: unknown): unknown {
  if (typeof value === "bigint") return Number(value);
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array || value instanceof Date) return value;
  if (Array.isArray(value)) return value.map(convert);
  const typeName = (value as { $typeName?: string }).$typeName;
  if (typeName === "google.protobuf.Timestamp") return timestampDate(value as Timestamp);
  if (typeName === "google.protobuf.Duration") return durationMs(value as Duration);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeName !== undefined && (key === "$typeName" || key === "$unknown")) continue;
    out[key] = convert(item); // JSON (Struct fields) comes out as it went in
  }
  return out;
}
