/**
 * The operator's calls (AdminService): `client.admin`.
 *
 *     const usage = await client.admin.usage();
 *     await client.admin.export("./acme.tar", { onProgress: (p) => console.log(p.phase, p.done) });
 *     const report = await client.admin.cleanup({ dryRun: true });
 *     const { secret } = await client.admin.tokens.create({ name: "ci", role: "writer", namespaces: ["ci"] });
 *     await client.admin.quotas.set(10 * 2 ** 30);
 *
 * Long operations stream progress messages before their result: give
 * `onProgress` to see them. Reports come back as plain objects of the generated
 * messages' shape (`Plain<...>`: int64 as number, Timestamp as Date, Duration
 * as milliseconds).
 */
import { create } from "@bufbuild/protobuf";
import { Quotas, Tokens } from "./access.js";
import type { CallOptions, Connection } from "./connection.js";
import { paginate } from "./connection.js";
import { type ByteSource, type ByteTarget, chunksOf, writeTo } from "./bytes.js";
import { fromDuration, type Plain, plain, toDuration, toTimestamp } from "./convert.js";
import { DataLossError } from "./errors.js";
import {
  AdminService,
  type ArchiveSummary as ArchiveSummaryMessage,
  type AuditEntry as AuditEntryMessage,
  type CleanupReport as CleanupReportMessage,
  ConflictPolicy,
  type GetCleanupStatusResponse,
  type GetServerInfoResponse,
  type ImportNamespaceRequest,
  ImportNamespaceRequestSchema,
  type ImportResult as ImportResultMessage,
  type Index as IndexMessage,
  type IntegrityReport as IntegrityReportMessage,
  type NamespaceUsage as NamespaceUsageMessage,
  type Progress as ProgressMessage,
} from "./gen/strata/v1/admin_pb.js";
import { type JobStateName, jobStateName } from "./jobs.js";
import {
  type RetentionPolicy,
  type RetentionTargetName,
  policyFromProto,
  targetValue,
} from "./retention.js";

/** How far a long operation has come (phase, units done, total when known, unit). */
export type Progress = Plain<ProgressMessage>;
/** The running server: version, backends, schema version, capabilities, cache counters. */
export type ServerInfo = Plain<GetServerInfoResponse>;
/** One mutation, as the audit log recorded it. */
export type AuditEntry = Plain<AuditEntryMessage>;
/** A secondary index declared on a data field of one collection. */
export type Index = Plain<IndexMessage>;
/** What a cleanup run removed (or, dry, would remove), step by step. */
export type CleanupReport = Plain<CleanupReportMessage>;
/** The scheduled cleanup on any replica: the pass running now, the last finished one. */
export type CleanupStatus = Plain<GetCleanupStatusResponse>;
/** What an integrity check found (and repaired). */
export type IntegrityReport = Plain<IntegrityReportMessage>;
/** What an exported archive holds. */
export type ArchiveSummary = Plain<ArchiveSummaryMessage>;
/** What an import did, kind by kind. */
export type ImportResult = Plain<ImportResultMessage>;
/** What one namespace stores; job counts by state name. */
export type NamespaceUsage = Omit<Plain<NamespaceUsageMessage>, "jobs"> & {
  jobs: { state: JobStateName; count: number }[];
};
/** What each namespace stores, and their totals. */
export interface Usage {
  namespaces: NamespaceUsage[];
  total: NamespaceUsage | undefined;
}

/** What an import does with a row whose id the target namespace already holds. */
export type ConflictPolicyName = "skip" | "overwrite" | "fail";

const CONFLICTS: { [name in ConflictPolicyName]: ConflictPolicy } = {
  skip: ConflictPolicy.SKIP,
  overwrite: ConflictPolicy.OVERWRITE,
  fail: ConflictPolicy.FAIL,
};

function usageFromProto(message: NamespaceUsageMessage): NamespaceUsage {
  const usage = plain(message);
  return {
    ...usage,
    jobs: message.jobs.map((count) => ({
      state: jobStateName(count.state),
      count: Number(count.count),
    })),
  };
}

/** Options of the calls that stream progress. */
export interface ProgressOptions extends CallOptions {
  /** Called with each progress message, before the result. */
  onProgress?: (progress: Progress) => void;
}

/** The operator's calls of one namespace. */
export class Admin {
  /** Bearer tokens: create/list/revoke (the server's, not the namespace's; see access.ts). */
  readonly tokens: Tokens;
  /** Storage quotas: set/get the namespace's, list every namespace's. */
  readonly quotas: Quotas;

  constructor(
    private readonly connection: Connection,
    /** The namespace. */
    readonly namespace: string,
  ) {
    this.tokens = new Tokens(connection);
    this.quotas = new Quotas(connection, namespace);
  }

  private get service() {
    return this.connection.client(AdminService);
  }

  /** Describe the running server: version, backends, schema version, capabilities. */
  async serverInfo(options: CallOptions = {}): Promise<ServerInfo> {
    const response = await this.connection.unary(
      (call) => this.service.getServerInfo({}, call),
      { idempotent: true },
      options,
    );
    return plain(response);
  }

  /**
   * What the namespace stores (or, with `allNamespaces`, every namespace, and
   * their totals); with `owner`, only that owner's records, transcripts and
   * artifacts (no jobs: they have no owner). `transcriptTiers` splits the
   * transcripts between the hot and the archive tier.
   */
  async usage(
    options: CallOptions & { allNamespaces?: boolean; owner?: string } = {},
  ): Promise<Usage> {
    const request = {
      namespace: options.allNamespaces ? "" : this.namespace,
      allNamespaces: options.allNamespaces ?? false,
      owner: options.owner ?? "",
    };
    const response = await this.connection.unary(
      (call) => this.service.getUsage(request, call),
      { idempotent: true },
      options,
    );
    return {
      namespaces: response.namespaces.map(usageFromProto),
      total: response.total === undefined ? undefined : usageFromProto(response.total),
    };
  }

  /**
   * Iterate over the namespace's audit entries, newest first, optionally only
   * those of one entity kind, entity id, actor or action, within a time range.
   */
  auditEntries(
    options: CallOptions & {
      entity?: string;
      entityId?: string;
      actor?: string;
      action?: string;
      startTime?: Date;
      endTime?: Date;
      pageSize?: number;
    } = {},
  ): AsyncGenerator<AuditEntry, void, undefined> {
    return paginate(async (pageToken) => {
      const request = {
        namespace: this.namespace,
        entity: options.entity ?? "",
        entityId: options.entityId ?? "",
        actor: options.actor ?? "",
        action: options.action ?? "",
        startTime: toTimestamp(options.startTime, "startTime"),
        endTime: toTimestamp(options.endTime, "endTime"),
        pageSize: options.pageSize ?? 0,
        pageToken,
      };
      const response = await this.connection.unary(
        (call) => this.service.listAuditEntries(request, call),
        { idempotent: true },
        options,
      );
      return { items: response.entries.map(plain), nextPageToken: response.nextPageToken };
    });
  }

  /**
   * Declare a secondary index on a data field ("data.status") of a collection
   * and build it without blocking writes; resolves to the index once built.
   */
  async createIndex(collection: string, field: string, options: ProgressOptions = {}): Promise<Index> {
    const request = { namespace: this.namespace, collection, field };
    let index: IndexMessage | undefined;
    for await (const message of this.connection.stream(
      (call) => this.service.createIndex(request, call),
      options,
    )) {
      if (message.event.case === "progress") options.onProgress?.(plain(message.event.value));
      else if (message.event.case === "index") index = message.event.value;
    }
    if (index === undefined) throw new DataLossError("CreateIndex ended without the index");
    return plain(index);
  }

  /** The declared indexes of the namespace, or of one collection. */
  async listIndexes(options: CallOptions & { collection?: string } = {}): Promise<Index[]> {
    const request = { namespace: this.namespace, collection: options.collection ?? "" };
    const response = await this.connection.unary(
      (call) => this.service.listIndexes(request, call),
      { idempotent: true },
      options,
    );
    return response.indexes.map(plain);
  }

  /** Remove a declared index. Throws NotFoundError when it was not declared. */
  async dropIndex(collection: string, field: string, options: CallOptions = {}): Promise<void> {
    const request = { namespace: this.namespace, collection, field };
    await this.connection.unary(
      (call) => this.service.dropIndex(request, call),
      { idempotent: false },
      options,
    );
  }

  /**
   * Create or replace the retention policy of (target, selector): data older
   * than `maxAgeMs` goes at the next cleanup. Throws InvalidArgumentError.
   */
  async setRetentionPolicy(
    policy: { target: RetentionTargetName; selector?: string; maxAgeMs: number },
    options: CallOptions = {},
  ): Promise<RetentionPolicy> {
    const request = {
      namespace: this.namespace,
      target: targetValue(policy.target),
      selector: policy.selector ?? "",
      maxAge: toDuration(policy.maxAgeMs, "maxAgeMs"),
    };
    const response = await this.connection.unary(
      (call) => this.service.setRetentionPolicy(request, call),
      { idempotent: true },
      options,
    );
    return policyFromProto(response);
  }

  /** The namespace's retention policies. */
  async listRetentionPolicies(options: CallOptions = {}): Promise<RetentionPolicy[]> {
    const request = { namespace: this.namespace };
    const response = await this.connection.unary(
      (call) => this.service.listRetentionPolicies(request, call),
      { idempotent: true },
      options,
    );
    return response.policies.map(policyFromProto);
  }

  /** Remove a retention policy. Throws NotFoundError when there is none. */
  async deleteRetentionPolicy(
    target: RetentionTargetName,
    selector = "",
    options: CallOptions = {},
  ): Promise<void> {
    const request = { namespace: this.namespace, target: targetValue(target), selector };
    await this.connection.unary(
      (call) => this.service.deleteRetentionPolicy(request, call),
      { idempotent: false },
      options,
    );
  }

  /**
   * Run a cleanup now (the namespace's policies, or with `allNamespaces` every
   * namespace's, as the scheduler does); with `dryRun`, only count what would go.
   */
  async cleanup(
    options: ProgressOptions & { dryRun?: boolean; allNamespaces?: boolean } = {},
  ): Promise<CleanupReport> {
    const request = {
      namespace: this.namespace,
      allNamespaces: options.allNamespaces ?? false,
      dryRun: options.dryRun ?? false,
    };
    let report: CleanupReportMessage | undefined;
    for await (const message of this.connection.stream(
      (call) => this.service.runCleanup(request, call),
      options,
    )) {
      if (message.event.case === "progress") options.onProgress?.(plain(message.event.value));
      else if (message.event.case === "report") report = message.event.value;
    }
    if (report === undefined) throw new DataLossError("RunCleanup ended without its report");
    return plain(report);
  }

  /**
   * How the scheduled cleanup goes, as any replica sees it: `running` (which
   * replica, the step it is on) and `last` (replica, start and end, steps,
   * error), each undefined when there is none. Needs an admin token for "*".
   */
  async cleanupStatus(options: CallOptions = {}): Promise<CleanupStatus> {
    const response = await this.connection.unary(
      (call) => this.service.getCleanupStatus({}, call),
      { idempotent: true },
      options,
    );
    return plain(response);
  }

  /**
   * Check what is stored for consistency (with `verifyBlobs`, also every blob's
   * bytes); with `repair`, fix what is safe to fix. Resolves to the report.
   */
  async checkIntegrity(
    options: ProgressOptions & {
      allNamespaces?: boolean;
      verifyBlobs?: boolean;
      verifySamplePercent?: number;
      repair?: boolean;
    } = {},
  ): Promise<IntegrityReport> {
    const request = {
      namespace: this.namespace,
      allNamespaces: options.allNamespaces ?? false,
      verifyBlobs: options.verifyBlobs ?? false,
      verifySamplePercent: options.verifySamplePercent ?? 0,
      repair: options.repair ?? false,
    };
    let report: IntegrityReportMessage | undefined;
    for await (const message of this.connection.stream(
      (call) => this.service.checkIntegrity(request, call),
      options,
    )) {
      if (message.event.case === "progress") options.onProgress?.(plain(message.event.value));
      else if (message.event.case === "report") report = message.event.value;
    }
    if (report === undefined) throw new DataLossError("CheckIntegrity ended without its report");
    return plain(report);
  }

  /**
   * The last integrity check's report of the namespace (with `allNamespaces`, of
   * the check of every namespace the server schedules), by whichever server ran
   * it, and how often the server schedules one (`scheduleIntervalMs`, undefined
   * when it does not). `lastReport` is undefined when no check has run.
   */
  async integrityStatus(
    options: CallOptions & { allNamespaces?: boolean } = {},
  ): Promise<{ lastReport: IntegrityReport | undefined; scheduleIntervalMs: number | undefined }> {
    const request = {
      namespace: options.allNamespaces ? "" : this.namespace,
      allNamespaces: options.allNamespaces ?? false,
    };
    const response = await this.connection.unary(
      (call) => this.service.getIntegrityStatus(request, call),
      { idempotent: true },
      options,
    );
    return {
      lastReport: response.lastReport === undefined ? undefined : plain(response.lastReport),
      scheduleIntervalMs: fromDuration(response.scheduleInterval),
    };
  }

  /**
   * Export the namespace (or one owner's transcripts and artifacts) as one
   * portable archive written to `target` (a path, renamed into place once
   * complete, or a Writable). Resolves to the archive's summary.
   */
  async export(
    target: ByteTarget,
    options: ProgressOptions & { owner?: string } = {},
  ): Promise<ArchiveSummary> {
    const request = { namespace: this.namespace, owner: options.owner ?? "" };
    const messages = this.connection.stream(
      (call) => this.service.exportNamespace(request, call),
      options,
    );
    let summary: ArchiveSummaryMessage | undefined;
    const onProgress = options.onProgress;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for await (const message of messages) {
        const event = message.event;
        if (event.case === "chunk") yield event.value;
        else if (event.case === "progress") onProgress?.(plain(event.value));
        else if (event.case === "summary") summary = event.value;
      }
      if (summary === undefined) throw new DataLossError("the export ended without its summary");
    }
    await writeTo(target, chunks());
    return plain(summary as ArchiveSummaryMessage);
  }

  /**
   * Import an archive made by `export` (a path, bytes or a stream) into the
   * namespace (or `into`), all or nothing. `onConflict` says what happens to ids
   * the namespace already holds: "fail" (the default: nothing is imported),
   * "skip" or "overwrite". Throws InvalidArgumentError (reason BAD_ARCHIVE),
   * ResourceExhaustedError (too large), AlreadyExistsError.
   */
  async import(
    source: ByteSource,
    options: ProgressOptions & { into?: string; onConflict?: ConflictPolicyName; size?: number } = {},
  ): Promise<ImportResult> {
    const conflict = CONFLICTS[options.onConflict ?? "fail"];
    if (conflict === undefined) throw new TypeError(`unknown conflict policy ${options.onConflict}`);
    const header = {
      namespace: options.into ?? this.namespace,
      onConflict: conflict,
      size: BigInt(options.size ?? 0),
    };
    async function* requests(): AsyncGenerator<ImportNamespaceRequest> {
      yield create(ImportNamespaceRequestSchema, { part: { case: "header", value: header } });
      for await (const chunk of chunksOf(source)) {
        yield create(ImportNamespaceRequestSchema, { part: { case: "chunk", value: chunk } });
      }
    }
    let result: ImportResultMessage | undefined;
    for await (const message of this.connection.stream(
      (call) => this.service.importNamespace(requests(), call),
      options,
    )) {
      if (message.event.case === "progress") options.onProgress?.(plain(message.event.value));
      else if (message.event.case === "result") result = message.event.value;
    }
    if (result === undefined) throw new DataLossError("the import ended without its result");
    return plain(result);
  }
}
