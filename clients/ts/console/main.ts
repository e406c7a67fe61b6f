/**
 * The runtime's /debug console: pick an extension and version, edit the JSON
 * input and execution context, invoke over gRPC-web or Connect, and read the
 * output, metrics, logs and typed errors. Built into app/debug/static/console.js
 * with `make console`; everything it does goes through the public client in
 * ../src/index.ts, exactly as any browser caller would.
 */
import { createClient } from "@connectrpc/connect";
import { ExtensionRuntimeAdmin, type RolloutState } from "../src/gen/ameide/extensions/v1/admin_pb.js";
import {
  codeName,
  ConnectError,
  createRuntimeClient,
  ExtensionError,
  parseJsonInput,
  stringifyJson,
  toExtensionError,
  type ExecutionContextInit,
  type GuestLogLine,
  type InvocationResult,
  type InvokeInput,
  type OutputFormatName,
  type TransportKind,
} from "../src/index.js";

interface VersionInfo {
  version: string;
  abi: string;
  risk_tier: string;
  description: string;
  disabled: string | null;
}

interface RolloutInfo {
  previous: string | null;
  candidate: string | null;
  shadow_per_mille: number;
  canary_percent: number;
  rolled_back_to: string | null;
}

interface ExtensionInfo {
  id: string;
  owner: string;
  promoted: string | null;
  rollout: RolloutInfo | null;
  versions: VersionInfo[];
}

const STORAGE_KEY = "extensions-runtime.debug-console.v1";
/** The extension select's last option: an id typed by hand (not listed, or another server). */
const OTHER = "__other__";

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`console: missing #${id}`);
  return el as T;
}

const ui = {
  server: $<HTMLInputElement>("server"),
  transport: $<HTMLSelectElement>("transport"),
  token: $<HTMLInputElement>("token"),
  extension: $<HTMLSelectElement>("extension"),
  extensionOther: $<HTMLInputElement>("extension-other"),
  extensionOtherLabel: $<HTMLLabelElement>("extension-other-label"),
  version: $<HTMLSelectElement>("version"),
  description: $<HTMLParagraphElement>("description"),
  refresh: $<HTMLButtonElement>("refresh"),
  inputMode: $<HTMLSelectElement>("input-mode"),
  input: $<HTMLTextAreaElement>("input"),
  context: $<HTMLTextAreaElement>("context"),
  includeLogs: $<HTMLInputElement>("include-logs"),
  outputFormat: $<HTMLSelectElement>("output-format"),
  timeout: $<HTMLInputElement>("timeout"),
  invoke: $<HTMLButtonElement>("invoke"),
  form: $<HTMLFormElement>("request"),
  problem: $<HTMLParagraphElement>("problem"),
  status: $<HTMLDivElement>("status"),
  outputSection: $<HTMLDivElement>("output-section"),
  details: $<HTMLDivElement>("details"),
  outputHead: $<HTMLHeadingElement>("output-head"),
  output: $<HTMLPreElement>("output"),
  metrics: $<HTMLTableSectionElement>("metrics"),
  logs: $<HTMLOListElement>("logs"),
  logsNote: $<HTMLParagraphElement>("logs-note"),
  errorBox: $<HTMLDivElement>("error"),
  errorKind: $<HTMLSpanElement>("error-kind"),
  errorCode: $<HTMLSpanElement>("error-code"),
  errorMessage: $<HTMLParagraphElement>("error-message"),
  requestId: $<HTMLSpanElement>("request-id"),
  resolved: $<HTMLSpanElement>("resolved-version"),
  elapsed: $<HTMLSpanElement>("elapsed"),
  rolloutPanel: $<HTMLDetailsElement>("rollout-panel"),
  rolloutState: $<HTMLSpanElement>("rollout-state"),
  rolloutCandidate: $<HTMLSelectElement>("rollout-candidate"),
  rolloutShadow: $<HTMLInputElement>("rollout-shadow"),
  rolloutCanary: $<HTMLInputElement>("rollout-canary"),
  rolloutApply: $<HTMLButtonElement>("rollout-apply"),
  rolloutResult: $<HTMLParagraphElement>("rollout-result"),
};

let catalog: ExtensionInfo[] = [];

// ---- persistence of the person's choices (not of tokens) -------------------

interface Saved {
  server?: string;
  transport?: TransportKind;
  context?: string;
  extension?: string;
  inputs?: Record<string, string>;
}

function load(): Saved {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "{}") as Saved;
  } catch {
    return {};
  }
}

function save(patch: Partial<Saved>): void {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ ...load(), ...patch }));
  } catch {
    // private mode or storage disabled: nothing to remember
  }
}

// ---- the catalog -----------------------------------------------------------

function exampleFrom(description: string): string | undefined {
  // The first {...} in a description that parses as JSON is its example input.
  for (let start = description.indexOf("{"); start >= 0; start = description.indexOf("{", start + 1)) {
    let depth = 0;
    for (let i = start; i < description.length; i++) {
      const c = description[i];
      if (c === "{") depth++;
      else if (c === "}" && --depth === 0) {
        try {
          return JSON.stringify(JSON.parse(description.slice(start, i + 1)), null, 2);
        } catch {
          break;
        }
      }
    }
  }
  return undefined;
}

function extensionId(): string {
  return ui.extension.value === OTHER ? ui.extensionOther.value.trim() : ui.extension.value;
}

function selectedInfo(): { ext?: ExtensionInfo; ver?: VersionInfo } {
  const ext = catalog.find((e) => e.id === extensionId());
  const chosen = ui.version.value || ext?.promoted || "";
  return { ext, ver: ext?.versions.find((v) => v.version === chosen) };
}

function option(value: string, label: string): HTMLOptionElement {
  const el = document.createElement("option");
  el.value = value;
  el.textContent = label;
  return el;
}

/** Versions and description of the chosen extension; a new choice also loads its input. */
function showVersions(loadInput = true): void {
  ui.extensionOtherLabel.hidden = ui.extension.value !== OTHER;
  const { ext } = selectedInfo();
  ui.version.replaceChildren(
    option("", ext ? `promoted (${ext.promoted ?? "none"})` : "promoted"),
    ...(ext?.versions ?? []).map((v) =>
      option(v.version, v.disabled ? `${v.version} — disabled` : v.version),
    ),
  );
  showDescription();
  showRollout();
  if (!loadInput) return;
  const saved = load().inputs?.[extensionId()];
  const example = exampleFrom(selectedInfo().ver?.description ?? "");
  if (saved !== undefined) ui.input.value = saved;
  else if (example !== undefined) ui.input.value = example;
}

function showDescription(): void {
  const { ver } = selectedInfo();
  if (!ver) {
    ui.description.textContent = "";
    return;
  }
  const facts = `${ver.abi} · tier ${ver.risk_tier}${ver.disabled ? ` · disabled: ${ver.disabled}` : ""}`;
  ui.description.textContent = ver.description ? `${ver.description} (${facts})` : facts;
}

async function loadCatalog(): Promise<void> {
  document.body.dataset.ready = "false";
  ui.problem.textContent = "";
  try {
    // With caller auth on the listing needs the same token as the RPC.
    const token = ui.token.value.trim();
    const response = await fetch(new URL("/debug/extensions", serverUrl()), {
      cache: "no-store",
      ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    });
    if (!response.ok) throw new Error(`GET /debug/extensions answered HTTP ${response.status}`);
    catalog = ((await response.json()) as { extensions: ExtensionInfo[] }).extensions;
  } catch (err) {
    // Another server may not serve the console (or the listing) to this origin:
    // the extension id can still be typed.
    catalog = [];
    ui.problem.textContent = `Could not list extensions (${String(err)}); type an id instead.`;
  }
  const current = extensionId();
  const previous = current || load().extension || "hello";
  ui.extension.replaceChildren(
    ...catalog.map((e) => option(e.id, e.id)),
    option(OTHER, "other id…"),
  );
  if (catalog.some((e) => e.id === previous)) {
    ui.extension.value = previous;
  } else {
    ui.extension.value = OTHER;
    ui.extensionOther.value = previous;
  }
  // Reloading the list keeps what the person typed for the same extension.
  showVersions(previous !== current);
  document.body.dataset.ready = "true";
}

// ---- the rollout: shadow, canary, rolled back --------------------------------

function describeRollout(ext: ExtensionInfo): string {
  const r = ext.rollout;
  if (!r) return "nothing promoted";
  const parts = [`promoted ${ext.promoted ?? "none"}`];
  if (r.candidate) {
    parts.push(`candidate ${r.candidate}`, `shadow ${r.shadow_per_mille}‰`, `canary ${r.canary_percent}%`);
  } else {
    parts.push("no candidate");
  }
  if (r.previous) parts.push(`previous ${r.previous}`);
  if (r.rolled_back_to) parts.push(`ROLLED BACK to ${r.rolled_back_to}`);
  return parts.join(" · ");
}

/** The chosen extension's rollout, and the form that changes it. */
function showRollout(): void {
  const { ext } = selectedInfo();
  ui.rolloutPanel.hidden = !ext;
  if (!ext) return;
  ui.rolloutState.textContent = `(${describeRollout(ext)})`;
  const r = ext.rollout;
  ui.rolloutCandidate.replaceChildren(
    option("", "none (end the rollout)"),
    ...ext.versions.filter((v) => v.version !== ext.promoted).map((v) => option(v.version, v.version)),
  );
  ui.rolloutCandidate.value = r?.candidate ?? "";
  ui.rolloutShadow.value = String(r?.shadow_per_mille ?? 0);
  ui.rolloutCanary.value = String(r?.canary_percent ?? 0);
  ui.rolloutApply.disabled = !ext.promoted;
}

function wholeNumber(input: HTMLInputElement, max: number, name: string): number {
  const n = Number(input.value);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`${name} must be a whole number from 0 to ${max}`);
  return n;
}

async function applyRollout(): Promise<void> {
  const { ext } = selectedInfo();
  if (!ext) return;
  ui.rolloutResult.textContent = "";
  const candidateVersion = ui.rolloutCandidate.value;
  let shadowPerMille: number;
  let canaryPercent: number;
  try {
    shadowPerMille = candidateVersion ? wholeNumber(ui.rolloutShadow, 1000, "Shadow") : 0;
    canaryPercent = candidateVersion ? wholeNumber(ui.rolloutCanary, 100, "Canary") : 0;
  } catch (err) {
    ui.rolloutResult.textContent = (err as Error).message;
    return;
  }
  const token = ui.token.value.trim();
  const { transport } = createRuntimeClient(serverUrl(), {
    transport: ui.transport.value as TransportKind,
    ...(token ? { token } : {}),
  });
  const admin = createClient(ExtensionRuntimeAdmin, transport);
  ui.rolloutApply.disabled = true;
  try {
    const answer = await admin.setRollout({
      extensionId: ext.id,
      owner: ext.owner === "_platform" ? "" : ext.owner,
      candidateVersion,
      shadowPerMille,
      canaryPercent,
    });
    const state: RolloutState | undefined = answer.rollout;
    ui.rolloutResult.textContent = state?.candidateVersion
      ? `Applied: candidate ${state.candidateVersion}, shadow ${state.shadowPerMille}‰, canary ${state.canaryPercent}%.`
      : "Applied: no candidate.";
    ui.rolloutResult.dataset.state = "ok";
    await loadCatalog();
  } catch (err) {
    const e = ConnectError.from(err);
    ui.rolloutResult.textContent = `Refused (${codeName(e.code)}): ${e.rawMessage}`;
    ui.rolloutResult.dataset.state = "error";
  } finally {
    ui.rolloutApply.disabled = false;
  }
}

// ---- invoking ----------------------------------------------------------------

function serverUrl(): string {
  return ui.server.value.trim() || window.location.origin;
}

function parseInput(): InvokeInput | undefined {
  const text = ui.input.value;
  if (ui.inputMode.value === "text") return new TextEncoder().encode(text);
  if (text.trim() === "") return undefined;
  try {
    return parseJsonInput(text); // exact: an id such as 9007199254740993 stays itself
  } catch (err) {
    throw new Error(`Input is not JSON: ${(err as Error).message}`);
  }
}

function parseContext(): ExecutionContextInit {
  const text = ui.context.value.trim();
  if (text === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`Context is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("Context must be a JSON object such as {\"tenantId\": \"t1\"}");
  }
  return value as ExecutionContextInit;
}

function formatBytes(bytes: Uint8Array): string {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  const hex = Array.from(bytes.slice(0, 64), (b) => b.toString(16).padStart(2, "0")).join(" ");
  return `${bytes.length} bytes (not JSON)\n\n${text}\n\nhex: ${hex}${bytes.length > 64 ? " …" : ""}`;
}

function number(n: number): string {
  return n.toLocaleString("en-US");
}

function metricRows(rows: [string, string][]): void {
  ui.metrics.replaceChildren(
    ...rows.map(([name, value]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = name;
      td.textContent = value;
      tr.append(th, td);
      return tr;
    }),
  );
}

function resetResult(): void {
  ui.errorBox.hidden = true;
  ui.outputSection.hidden = false;
  ui.details.hidden = false;
  ui.output.textContent = "";
  ui.outputHead.textContent = "Output";
  ui.metrics.replaceChildren();
  ui.logs.replaceChildren();
  ui.logsNote.textContent = "";
  ui.requestId.textContent = "–";
  ui.resolved.textContent = "–";
  ui.elapsed.textContent = "–";
}

function setStatus(kind: "idle" | "running" | "ok" | "error", text: string): void {
  ui.status.dataset.state = kind;
  ui.status.textContent = text;
}

function showResult(result: InvocationResult, elapsedMs: number): void {
  setStatus("ok", "OK");
  ui.outputHead.textContent = result.isJson ? "Output (JSON)" : "Output (bytes)";
  ui.output.textContent = result.isJson
    ? stringifyJson(result.output, 2)
    : formatBytes(result.output as Uint8Array);
  ui.requestId.textContent = result.requestId;
  ui.resolved.textContent = result.resolvedVersion;
  ui.elapsed.textContent = `${elapsedMs.toFixed(1)} ms`;
  const m = result.metrics;
  metricRows([
    ["duration", `${number(m.durationUs)} µs`],
    ["fuel consumed", number(m.fuelConsumed)],
    ["peak memory", `${number(m.peakMemoryBytes)} bytes`],
    ["host calls", number(m.hostCalls)],
    ["queue time", `${number(m.queueUs)} µs`],
  ]);
  showLogs(result.logs, result.logsTruncated);
}

/** The guest's log lines, for a success and a failure alike. */
function showLogs(logs: readonly GuestLogLine[], truncated: boolean): void {
  ui.logs.replaceChildren(
    ...logs.map((line) => {
      const li = document.createElement("li");
      const level = document.createElement("span");
      level.className = `level level-${line.level || "none"}`;
      level.textContent = line.level || "–";
      li.append(level, document.createTextNode(line.message));
      return li;
    }),
  );
  ui.logsNote.textContent = logs.length
    ? truncated
      ? "Truncated at the extension's log budget."
      : ""
    : ui.includeLogs.checked
      ? "No log lines."
      : "Logs were not requested.";
}

function showError(error: ExtensionError, elapsedMs: number): void {
  setStatus("error", error.kind);
  ui.errorBox.hidden = false;
  ui.errorKind.textContent = error.kind;
  ui.errorCode.textContent = error.codeName;
  ui.errorMessage.textContent = error.message;
  if (error.kind === "UNSPECIFIED" && /fetch/i.test(error.message)) {
    // fetch() itself failed: the browser got no answer it may show to this page.
    ui.errorMessage.textContent +=
      `\n\nThe browser could not call ${serverUrl()}: the server is down, or it does not ` +
      `allow calls from ${window.location.origin} (its cors_allowed_origins setting).`;
  }
  ui.outputSection.hidden = true;
  ui.details.hidden = error.metrics === undefined && error.logs.length === 0;
  showLogs(error.logs, error.logsTruncated);
  ui.requestId.textContent = error.requestId || "–";
  ui.resolved.textContent = error.version || "–";
  ui.elapsed.textContent = `${elapsedMs.toFixed(1)} ms`;
  if (error.metrics) {
    const m = error.metrics;
    metricRows([
      ["duration", `${number(m.durationUs)} µs`],
      ["fuel consumed", number(m.fuelConsumed)],
      ["peak memory", `${number(m.peakMemoryBytes)} bytes`],
    ]);
  }
}

async function invoke(): Promise<void> {
  ui.problem.textContent = "";
  let input: InvokeInput | undefined;
  let context: ExecutionContextInit;
  try {
    input = parseInput();
    context = parseContext();
  } catch (err) {
    ui.problem.textContent = (err as Error).message;
    return;
  }
  const transport = ui.transport.value as TransportKind;
  save({
    server: ui.server.value.trim(),
    transport,
    context: ui.context.value,
    extension: extensionId(),
    inputs: { ...(load().inputs ?? {}), [extensionId()]: ui.input.value },
  });
  const token = ui.token.value.trim();
  const client = createRuntimeClient(serverUrl(), { transport, caller: "debug-console", ...(token ? { token } : {}) });
  const timeout = Number.parseInt(ui.timeout.value, 10);
  resetResult();
  setStatus("running", `Invoking over ${transport === "grpc-web" ? "gRPC-web" : "Connect"}…`);
  ui.invoke.disabled = true;
  const started = performance.now();
  try {
    const result = await client.invoke(extensionId(), input, {
      context,
      version: ui.version.value,
      includeLogs: ui.includeLogs.checked,
      outputFormat: ui.outputFormat.value as OutputFormatName,
      ...(Number.isFinite(timeout) && timeout > 0 ? { timeoutMs: timeout } : {}),
    });
    showResult(result, performance.now() - started);
  } catch (err) {
    showError(toExtensionError(err), performance.now() - started);
  } finally {
    ui.invoke.disabled = false;
  }
}

// ---- wiring ------------------------------------------------------------------

function start(): void {
  const saved = load();
  ui.server.value = saved.server ?? "";
  ui.server.placeholder = window.location.origin;
  if (saved.transport) ui.transport.value = saved.transport;
  if (saved.context !== undefined) ui.context.value = saved.context;
  resetResult();
  setStatus("idle", "Ready");
  ui.extension.addEventListener("change", () => showVersions());
  ui.version.addEventListener("change", showDescription);
  ui.extensionOther.addEventListener("change", () => showVersions());
  ui.refresh.addEventListener("click", () => void loadCatalog());
  ui.rolloutApply.addEventListener("click", () => void applyRollout());
  ui.server.addEventListener("change", () => void loadCatalog());
  ui.token.addEventListener("change", () => void loadCatalog());
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    void invoke();
  });
  for (const area of [ui.input, ui.context]) {
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        ui.form.requestSubmit();
      }
    });
  }
  void loadCatalog();
}

start();
