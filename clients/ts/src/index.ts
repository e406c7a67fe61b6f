/**
 * TypeScript client for ameide.extensions.v1.WasmExtensionRuntime.
 *
 *   const runtime = createRuntimeClient("http://127.0.0.1:8080", { transport: "grpc-web", token });
 *   const result = await runtime.invoke("hello", { name: "Ada" }, { context: { tenantId: "t1" } });
 *   result.output; // { greeting: "Hello, Ada!" }
 *
 * Exact JSON: the input is sent as its JSON text (`input_bytes`) and the output
 * asked for as bytes and parsed here (see ./json.ts), never through
 * google.protobuf.Value's doubles, so integers of any size arrive and come back
 * exactly (those beyond Number.MAX_SAFE_INTEGER as `bigint`) on every transport.
 *
 * Works in browsers and in Node 20+ (both have fetch). Failures reject with an
 * ExtensionError whose `kind` is the runtime's stable ErrorKind name
 * ("TIMEOUT", "FUEL_EXHAUSTED", "TRAP", "NOT_FOUND", ...): branch on it, never
 * on the message. The generated messages and the service descriptor are
 * re-exported for callers who want the raw client.
 */
import { create, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

import {
  ErrorKind,
  ExecutionContextSchema,
  InvocationErrorSchema,
  InvokeExtensionRequestSchema,
  LogLevel,
  OutputFormat,
  WasmExtensionRuntime,
  type InvocationError,
  type InvocationMetrics,
  type LogLine,
  type InvokeExtensionRequest,
  type InvokeExtensionResponse,
} from "./gen/ameide/extensions/v1/runtime_pb.js";
import { parseJson, stringifyJson, type ExactJson } from "./json.js";

export * from "./gen/ameide/extensions/v1/runtime_pb.js";
export { parseJson, stringifyJson, type ExactJson } from "./json.js";
export { Code, ConnectError } from "@connectrpc/connect";

/** Wire protocol from a browser: gRPC-web (binary) or Connect (JSON unless `binary`). */
export type TransportKind = "grpc-web" | "connect";

/** A bearer token, or a function returning one (called per request). */
export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

export interface RuntimeClientOptions {
  /** Default "grpc-web". */
  transport?: TransportKind;
  token?: TokenSource;
  /** Connect only: binary protobuf instead of JSON. gRPC-web is always binary. */
  binary?: boolean;
  /** Default per-call timeout, sent as Connect-Timeout-Ms / grpc-timeout. */
  timeoutMs?: number;
  /** Fills ExecutionContext.caller when a call leaves it empty. */
  caller?: string;
  fetch?: typeof globalThis.fetch;
  interceptors?: Interceptor[];
}

/** The fields of ameide.extensions.v1.ExecutionContext, all optional. */
export interface ExecutionContextInit {
  tenantId?: string;
  organizationId?: string;
  userId?: string;
  requestId?: string;
  caller?: string;
  attributes?: Record<string, string>;
}

/**
 * "auto": JSON when the output parses as JSON, bytes otherwise; "json": JSON or an
 * INVALID_OUTPUT ExtensionError; "bytes": always the raw bytes. Decided here: the
 * runtime is always asked for bytes, so that numbers stay exact.
 */
export type OutputFormatName = "auto" | "json" | "bytes";

export interface InvokeOptions {
  context?: ExecutionContextInit;
  /** Empty: the promoted version. */
  version?: string;
  includeLogs?: boolean;
  outputFormat?: OutputFormatName;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Overrides the client's token for this call. */
  token?: string;
  headers?: Record<string, string>;
}

/**
 * Bytes are handed to the guest unchanged; anything else is sent as its exact
 * JSON text (`bigint` written as its digits; NaN and Infinity are refused).
 */
export type InvokeInput = ExactJson | Uint8Array;

export interface Metrics {
  durationUs: number;
  fuelConsumed: number;
  peakMemoryBytes: number;
  hostCalls: number;
  queueUs: number;
}

export interface GuestLogLine {
  level: "debug" | "info" | "warn" | "error" | "";
  message: string;
}

export interface InvocationResult {
  /**
   * The output as a JSON value when it is JSON, else the raw bytes (see `isJson`).
   * Integers beyond Number.MAX_SAFE_INTEGER are `bigint`; show it with `stringifyJson`.
   */
  output: ExactJson | Uint8Array;
  isJson: boolean;
  resolvedVersion: string;
  metrics: Metrics;
  logs: GuestLogLine[];
  logsTruncated: boolean;
  requestId: string;
}

/** ErrorKind names as the runtime reports them, plus UNSPECIFIED for unclassified failures. */
export type ErrorKindName = keyof typeof ErrorKind;

/** A failed invocation. `kind` is stable; `code` is the Connect/gRPC code. */
export class ExtensionError extends Error {
  override readonly name = "ExtensionError";
  readonly kind: ErrorKindName;
  readonly code: Code;
  /** Connect's name for the code: "deadline_exceeded", "not_found", ... */
  readonly codeName: string;
  readonly requestId: string;
  readonly extensionId: string;
  readonly version: string;
  readonly metrics: Metrics | undefined;
  /** The guest's log lines up to the failure, when the call asked for logs. */
  readonly logs: GuestLogLine[];
  readonly logsTruncated: boolean;
  override readonly cause: ConnectError;

  constructor(cause: ConnectError, detail: InvocationError | undefined, fallback: Fallback) {
    const kind = detail !== undefined && detail.kind !== ErrorKind.UNSPECIFIED
      ? kindName(detail.kind)
      : kindForCode(cause.code);
    const message = detail?.message || cause.rawMessage;
    super(`${kind}: ${message}`);
    this.kind = kind;
    this.message = message;
    this.code = cause.code;
    this.codeName = codeName(cause.code);
    this.requestId = detail?.requestId || fallback.requestId;
    this.extensionId = detail?.extensionId || fallback.extensionId;
    this.version = detail?.version || fallback.version;
    this.metrics = detail?.metrics ? metricsFrom(detail.metrics) : undefined;
    this.logs = logLines(detail?.logs ?? []);
    this.logsTruncated = detail?.logsTruncated ?? false;
    this.cause = cause;
  }

  /** True when the same call may succeed later. */
  get retryable(): boolean {
    return this.kind === "OVERLOADED" || this.kind === "UNAVAILABLE" || this.kind === "HOST_CALL_FAILED";
  }
}

interface Fallback {
  requestId: string;
  extensionId: string;
  version: string;
}

export interface RuntimeClient {
  invoke(extensionId: string, input?: InvokeInput, options?: InvokeOptions): Promise<InvocationResult>;
  /** The generated client, for callers who want the raw messages. */
  readonly raw: Client<typeof WasmExtensionRuntime>;
  readonly transport: Transport;
}

/** A client for the runtime at `baseUrl` (for example "http://127.0.0.1:8080"). */
export function createRuntimeClient(baseUrl: string, options: RuntimeClientOptions = {}): RuntimeClient {
  const interceptors: Interceptor[] = [...(options.interceptors ?? [])];
  if (options.token !== undefined) {
    const source = options.token;
    interceptors.unshift((next) => async (req) => {
      if (!req.header.has("authorization")) {
        const token = typeof source === "string" ? source : await source();
        if (token) req.header.set("authorization", `Bearer ${token}`);
      }
      return next(req);
    });
  }
  const common = {
    baseUrl: baseUrl.replace(/\/+$/, ""),
    interceptors,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs !== undefined ? { defaultTimeoutMs: options.timeoutMs } : {}),
  };
  const transport = (options.transport ?? "grpc-web") === "grpc-web"
    ? createGrpcWebTransport(common)
    : createConnectTransport({ ...common, useBinaryFormat: options.binary ?? false });
  const raw = createClient(WasmExtensionRuntime, transport);

  async function invoke(
    extensionId: string,
    input?: InvokeInput,
    opts: InvokeOptions = {},
  ): Promise<InvocationResult> {
    const requestId = opts.context?.requestId || newRequestId();
    const fallback = { requestId, extensionId, version: opts.version ?? "" };
    let request: InvokeExtensionRequest;
    try {
      const context = { ...opts.context, requestId };
      request = buildRequest(extensionId, input, { ...opts, context }, options.caller ?? "");
    } catch (err) {
      const message = `input is not JSON: ${(err as Error).message}`;
      throw clientError(Code.InvalidArgument, ErrorKind.INVALID_INPUT, message, fallback);
    }
    const headers = new Headers(opts.headers);
    headers.set("x-request-id", requestId);
    if (opts.token) headers.set("authorization", `Bearer ${opts.token}`);
    let responseHeaders: Headers | undefined;
    try {
      const response = await raw.invokeExtension(request, {
        headers,
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        onHeader: (h) => {
          responseHeaders = h;
        },
      });
      const answeredId = responseHeaders?.get("x-request-id") || requestId;
      const format = opts.outputFormat ?? "auto";
      return resultFrom(response, answeredId, format, { ...fallback, requestId: answeredId });
    } catch (err) {
      throw toExtensionError(err, fallback);
    }
  }

  return { invoke, raw, transport };
}

/** The typed error for anything a call rejected with (a ConnectError or not). */
export function toExtensionError(err: unknown, fallback: Partial<Fallback> = {}): ExtensionError {
  if (err instanceof ExtensionError) return err;
  const cause = ConnectError.from(err);
  const detail = cause.findDetails(InvocationErrorSchema)[0];
  return new ExtensionError(cause, detail, {
    requestId: fallback.requestId ?? "",
    extensionId: fallback.extensionId ?? "",
    version: fallback.version ?? "",
  });
}

function buildRequest(
  extensionId: string,
  input: InvokeInput | undefined,
  opts: InvokeOptions,
  defaultCaller: string,
): InvokeExtensionRequest {
  const ctx = opts.context ?? {};
  const context = create(ExecutionContextSchema, {
    tenantId: ctx.tenantId ?? "",
    organizationId: ctx.organizationId ?? "",
    userId: ctx.userId ?? "",
    requestId: ctx.requestId || newRequestId(),
    caller: ctx.caller || defaultCaller,
    attributes: { ...(ctx.attributes ?? {}) },
  });
  let payload: InvokeExtensionRequest["input"] = { case: undefined };
  if (input instanceof Uint8Array) {
    payload = { case: "inputBytes", value: input };
  } else if (input !== undefined) {
    // The exact JSON text as bytes: the guest reads the same UTF-8 JSON either way.
    payload = { case: "inputBytes", value: new TextEncoder().encode(stringifyJson(input)) };
  }
  return create(InvokeExtensionRequestSchema, {
    context,
    extensionId,
    version: opts.version ?? "",
    input: payload,
    includeLogs: opts.includeLogs ?? false,
    outputFormat: OutputFormat.BYTES, // parsed here, exactly (resultFrom)
  });
}

/** A failure the client itself decides (bad input, output that is not the JSON asked for). */
function clientError(
  code: Code,
  kind: ErrorKind,
  message: string,
  fallback: Fallback,
  response?: InvokeExtensionResponse,
): ExtensionError {
  const detail = create(InvocationErrorSchema, {
    kind,
    message,
    extensionId: fallback.extensionId,
    version: response?.resolvedVersion || fallback.version,
    requestId: fallback.requestId,
    ...(response?.metrics ? { metrics: response.metrics } : {}),
    logs: response?.logs ?? [],
    logsTruncated: response?.logsTruncated ?? false,
  });
  return new ExtensionError(new ConnectError(message, code), detail, fallback);
}

function resultFrom(
  response: InvokeExtensionResponse,
  requestId: string,
  format: OutputFormatName,
  fallback: Fallback,
): InvocationResult {
  let output: ExactJson | Uint8Array = new Uint8Array();
  let isJson = false;
  if (response.output.case === "outputJson") {
    // A runtime that chose JSON itself (a double per number; not what invoke asks for).
    output = toJson(ValueSchema, response.output.value);
    isJson = true;
  } else if (response.output.case === "outputBytes") {
    output = response.output.value;
    if (format !== "bytes") {
      const parsed = exactJson(output);
      if (parsed !== NOT_JSON) {
        output = parsed;
        isJson = true;
      } else if (format === "json") {
        throw clientError(
          Code.FailedPrecondition,
          ErrorKind.INVALID_OUTPUT,
          "the extension's output is not valid JSON",
          fallback,
          response,
        );
      }
    }
  }
  return {
    output,
    isJson,
    resolvedVersion: response.resolvedVersion,
    metrics: metricsFrom(response.metrics),
    logs: logLines(response.logs),
    logsTruncated: response.logsTruncated,
    requestId,
  };
}

function logLines(lines: readonly LogLine[]): GuestLogLine[] {
  return lines.map((line) => ({ level: levelName(line.level), message: line.message }));
}

function metricsFrom(m: InvocationMetrics | undefined): Metrics {
  return {
    durationUs: Number(m?.durationUs ?? 0n),
    fuelConsumed: Number(m?.fuelConsumed ?? 0n),
    peakMemoryBytes: Number(m?.peakMemoryBytes ?? 0n),
    hostCalls: m?.hostCalls ?? 0,
    queueUs: Number(m?.queueUs ?? 0n),
  };
}

function levelName(level: LogLevel): GuestLogLine["level"] {
  switch (level) {
    case LogLevel.DEBUG:
      return "debug";
    case LogLevel.INFO:
      return "info";
    case LogLevel.WARN:
      return "warn";
    case LogLevel.ERROR:
      return "error";
    default:
      return "";
  }
}

function kindName(kind: ErrorKind): ErrorKindName {
  return (ErrorKind[kind] as ErrorKindName | undefined) ?? "UNSPECIFIED";
}

/** Failures without an InvocationError detail (client deadline, network, auth). */
function kindForCode(code: Code): ErrorKindName {
  switch (code) {
    case Code.DeadlineExceeded:
      return "TIMEOUT";
    case Code.Unavailable:
      return "UNAVAILABLE";
    case Code.InvalidArgument:
      return "INVALID_INPUT";
    case Code.Internal:
      return "INTERNAL";
    default:
      return "UNSPECIFIED";
  }
}

/** Connect's snake_case name of a code ("deadline_exceeded"). */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

function newRequestId(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const NOT_JSON: unique symbol = Symbol("not JSON");

/** The output parsed exactly, or NOT_JSON (invalid UTF-8 or not JSON text). */
function exactJson(bytes: Uint8Array): ExactJson | typeof NOT_JSON {
  try {
    return parseJson(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    return NOT_JSON;
  }
}

/** Parse text as JSON for `invoke`, exactly (see `parseJson`; throws SyntaxError with the position). */
export function parseJsonInput(text: string): ExactJson {
  return parseJson(text);
}
