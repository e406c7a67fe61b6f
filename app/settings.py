"""The one typed settings object, and the configuration it hands each part.

Every knob comes from an environment variable prefixed ``EXTENSIONS_RUNTIME_``
so the chart, ``make run`` and the tests configure the service the same way.
Nothing else in the package reads ``os.environ``.

The sandbox and the controls do not read ``Settings`` themselves: each part
takes a small frozen value object naming only what it uses
(:class:`EngineConfig`, :class:`ExecutorConfig`, ...), and those are built
here, from the settings, in one place (the ``*_config`` properties and
``limit_bounds`` of :class:`Settings`). So a part's dependencies are visible
in its signature, and a test builds one without a whole environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app._ids import S3_PREFIX_PATTERN
from app.limits import DeclaredLimits

ServerName = Literal["pyvoy", "uvicorn", "hypercorn"]
_REPO = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = _REPO / "examples" / "extensions"
DEV_EXTENSIONS_DIR = _REPO / "var" / "extensions"
"""Where the dev loop reads and ``publish`` writes: untracked, seeded from the examples."""
DEV_DEFAULTS: dict[str, object] = {
    "auth_enabled": False,
    "log_format": "console",  # a person at a terminal, unless the environment asks for JSON
    "debug_console": True,
    "module_cache_dir": _REPO / "var" / "module-cache",
    "policy_file": _REPO / "config" / "risk-tiers.yaml",
    # A local directory costs a few stat calls to re-read: a published version
    # is live within half a second, with no webhook or token to set up.
    "catalog_poll_interval_s": 0.5,
}
"""What ``dev`` (``serve --dev`` or ``EXTENSIONS_RUNTIME_DEV=true``) changes, unless set."""


def _string_list(value: object) -> object:
    """A JSON list or a comma-separated string (``http://a,http://b``) from the environment."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


OriginList = Annotated[list[str], NoDecode, BeforeValidator(_string_list)]


class Rate(BaseModel):
    """A token bucket's refill rate and size (app/controls/_ratelimit.py); 0: no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float = Field(ge=0)
    burst: int = Field(default=1, ge=1, le=1_000_000)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The wasmtime engine and what every store is made with (app/sandbox/_engine.py)."""

    max_wasm_stack_bytes: int
    watch_memory: bool
    max_memory_bytes: int
    """The largest memory any guest may have: the ceiling of watched memories."""
    max_table_elements: int
    host_paced_calls_per_s: int
    epoch_tick_ms: int
    component_spares: bool = True


@dataclass(frozen=True, slots=True)
class LimitBounds:
    """The operator's limits around every extension's own (app/sandbox/_limits.py).

    Both state every field: ``default`` for what a definition leaves unstated,
    ``maximum`` for what any definition may ask.
    """

    default: DeclaredLimits
    maximum: DeclaredLimits


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """Threads and admission of the sandbox lanes (app/sandbox/_executor.py)."""

    threads: int
    long_threads: int
    io_threads: int
    queue: int
    """Waiting slots per lane, on top of its threads."""
    tenant_share: float
    slot_us: float = 5_000.0
    """In the ``short`` lane, the estimated CPU one admission slot stands for."""
    short_max: int = 1024
    """In the ``short`` lane, the most calls admitted at once however cheap they are."""


@dataclass(frozen=True, slots=True)
class InlineConfig:
    """The fast path's threshold and CPU slice (app/sandbox/_fastpath.py); 0 us: never inline."""

    threshold_us: int
    slice_ms: float


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Circuit breakers per (version, tenant) and per version (app/controls/breaker.py)."""

    window_s: float = 30.0
    min_calls: int = 10
    failure_rate: float = 0.5
    cooldown_s: float = 15.0
    min_tenants: int = 3
    """Distinct failing tenants it takes to open a version for everyone."""
    max_tenant_breakers: int = 10_000


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Token buckets per tenant and per (tenant, tier) (app/controls/ratelimit.py)."""

    default: Rate
    tiers: dict[str, Rate] = field(default_factory=dict)
    max_buckets: int = 10_000
    count_tenants: bool = False
    """Count refusals per tenant (the metrics' tenant label), else all together."""
    hold_s: float = 0.0
    hold_max_per_tenant: int = 0
    hold_max: int = 0


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """How the processes share control state through storage (app/fleet)."""

    sync_interval_s: float = 1.0
    heartbeat_s: float = 5.0
    member_ttl_s: float = 15.0
    stale_after_s: float = 10.0
    event_ttl_s: float = 600.0
    max_switches: int = 1_000
    divide_rate_limits: bool = True


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """Shadow runs of a candidate version (app/rollout)."""

    shadow_max_in_flight: int = 2
    diff_samples: int = 20
    shadow_opt_out: frozenset[str] = frozenset()


class Settings(BaseSettings):
    """Configuration of one runtime process."""

    model_config = SettingsConfigDict(env_prefix="EXTENSIONS_RUNTIME_", frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _dev_defaults(cls, data: object) -> object:
        """The embedded default in one place, however ``dev`` was turned on.

        Anything set explicitly (argument or environment) wins over these.
        """
        if isinstance(data, dict) and _truthy(data.get("dev")):
            data = {**DEV_DEFAULTS, **data}
            if not data.get("s3_endpoint_url"):
                data.setdefault("extensions_dir", DEV_EXTENSIONS_DIR)
        return data

    dev: bool = Field(
        default=False,
        description="Embedded default for local work: example extensions, relaxed auth.",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        description="Port to listen on; 0: any free port (one worker).",
    )
    server: ServerName = Field(
        default="pyvoy",
        description="ASGI server; only pyvoy and hypercorn answer gRPC (HTTP/2).",
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="Server processes sharing the port (pyvoy)."
    )
    envoy_workers_yield: bool = Field(
        default=False,
        description="Envoy's worker threads never pre-empt the Python event loop when they "
        "wake on a shared core (SCHED_BATCH; pyvoy): more calls per core, but a request "
        "flood then delays other tenants' calls more (docs/performance.md).",
    )
    protocol_floor: bool = Field(
        default=False,
        description="Benchmark baseline: answer with the input, never touching wasm.",
    )
    debug_console: bool = Field(
        default=False,
        description="Serve the browser debug console at /debug (serve --dev turns it on).",
    )
    cors_allowed_origins: OriginList = Field(
        default_factory=list,
        description='Origins browsers may call the RPC from ("*": any); empty: no CORS at all.',
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe structured log line written to stderr."
    )
    log_format: Literal["json", "console"] = Field(
        default="json", description="JSON lines for collectors, or console for a terminal."
    )

    read_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="Largest request message accepted, after decompression.",
    )
    extensions_dir: Path | None = Field(
        default=None,
        description="Local directory of extensions (the embedded default without S3).",
    )

    # S3-compatible storage. With no endpoint the local directory is used.
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint; set, it replaces the local directory."
    )
    s3_region: str = Field(default="us-east-1", description="Region the S3 client signs for.")
    s3_bucket: str = Field(default="extensions", description="Bucket holding the extensions.")
    s3_prefix: str = Field(
        default="extensions/",
        pattern=S3_PREFIX_PATTERN,
        description="Key prefix of the extension layout inside the bucket (ends with /).",
    )
    s3_path_style: bool = Field(
        default=True, description="Path-style addressing, as most self-hosted S3 stores need."
    )
    s3_access_key_id: SecretStr | None = Field(
        default=None, description="S3 access key; unset: the client's default credentials."
    )
    s3_secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    s3_connect_timeout_s: float = Field(default=2.0, gt=0, description="S3 connect timeout.")
    s3_read_timeout_s: float = Field(default=5.0, gt=0, description="S3 read timeout.")
    s3_max_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts per S3 request, retries included."
    )
    s3_outage_backoff_s: float = Field(
        default=1.0,
        ge=0,
        description="After a storage failure, reads fail at once for this long (0: never).",
    )
    max_module_bytes: int = Field(
        default=32 * 1024 * 1024, gt=0, description="Largest module blob read from storage."
    )
    module_cache_entries: int = Field(
        default=256, gt=0, description="Compiled modules kept in memory (LRU by digest)."
    )
    module_cache_dir: Path | None = Field(
        default=None,
        description="Private directory for precompiled modules, shared by worker processes.",
    )

    # Caller authentication (bearer JWT). Turning it off is for local work only.
    auth_enabled: bool = Field(
        default=True, description="Require a bearer JWT on the RPC; off only for local work."
    )
    auth_hs256_secret: SecretStr | None = Field(
        default=None, description="HS256 key for caller tokens (development and tests)."
    )
    auth_jwks_file: Path | None = Field(
        default=None, description="JWK Set file with the public keys of caller tokens."
    )
    auth_jwks_url: str | None = Field(
        default=None, description="JWKS URL with the public keys of caller tokens (cached)."
    )
    auth_audience: str = Field(
        default="extensions-runtime", description="Required `aud` of caller tokens."
    )
    auth_issuer: str | None = Field(
        default=None,
        description="Required `iss` of caller tokens; with auth on it must be set outside dev.",
    )
    auth_leeway_s: int = Field(
        default=5, ge=0, le=300, description="Clock skew allowed when checking `exp`."
    )
    admin_scope: str = Field(
        default="extensions-runtime:admin",
        description="Scope (in the `scope` claim) the admin RPC requires, even in dev.",
    )
    auth_jwks_timeout_s: float = Field(
        default=3.0, gt=0, le=30, description="Longest one JWKS fetch may take."
    )
    auth_jwks_refresh_s: float = Field(
        default=300.0,
        gt=0,
        description="Age at which cached JWKS keys are refreshed in the background.",
    )
    auth_jwks_cooldown_s: float = Field(
        default=30.0,
        ge=0,
        description="At most one JWKS fetch for unknown key ids per this many seconds.",
    )

    # Risk tiers (hot-reloaded YAML/JSON) and the host-call bridge.
    policy_file: Path | None = Field(
        default=None, description="Risk-tier policy (YAML/JSON, hot-reloaded); unset: deny all."
    )
    hostcall_services: dict[str, str] = Field(
        default_factory=dict, description="service name -> base URL of its Connect endpoint"
    )
    hostcall_signing_keys_file: Path | None = Field(
        default=None,
        description="Mounted secret: the Ed25519/P-256 keys (JWK Set or one PEM) that sign "
        "host-call tokens; hot-reloaded. Their public halves are served as a JWKS.",
    )
    hostcall_token_secret: SecretStr | None = Field(
        default=None, description="HS256 host-call token secret: refused unless dev."
    )
    hostcall_jwks_max_age_s: int = Field(
        default=300, ge=0, le=3600, description="Cache-Control max-age of the host-call JWKS."
    )
    hostcall_token_ttl_s: int = Field(
        default=30, gt=0, le=600, description="Lifetime of one host call's token."
    )
    hostcall_token_issuer: str = Field(
        default="extensions-runtime",
        description="`iss` of host-call tokens, which services check.",
    )
    hostcall_timeout_ms: int = Field(
        default=2_000, gt=0, description="Longest one host call may take; never past the deadline."
    )
    hostcall_max_request_bytes: int = Field(
        default=256 * 1024, gt=0, description="Largest host-call request a guest may send."
    )
    hostcall_max_response_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest upstream response read for a guest."
    )

    # Observability.
    log_invocations: bool = Field(
        default=True, description="One structured log line per invocation (outcome, duration)."
    )
    invocation_log_per_s: float = Field(
        default=200.0,
        ge=0,
        description="Successful invocations logged per second per process at most, a tenant"
        " at most an eighth of it (its next line says how many were left out); failures are"
        " always logged. 0: every one.",
    )
    metrics_tenant_label: bool = Field(
        default=False, description="Add a tenant label to invocation metrics (cardinality!)."
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces",
    )
    tracing_enabled: bool = Field(default=True, description="ASGI server spans per request")
    kill_switches_file: Path | None = Field(
        default=None, description="Mounted kill-switch/degradation file (hot-reloaded)."
    )
    breaker_window_s: float = Field(
        default=30.0, gt=0, description="How far back a circuit breaker counts calls."
    )
    breaker_min_calls: int = Field(
        default=20, gt=0, description="Calls in the window before a breaker may open."
    )
    breaker_failure_rate: float = Field(
        default=0.5, gt=0, le=1, description="Share of guest faults in the window that opens it."
    )
    breaker_cooldown_s: float = Field(
        default=15.0, gt=0, description="How long an open breaker fails fast before a probe."
    )
    breaker_min_tenants: int = Field(
        default=3,
        gt=0,
        description="Distinct tenants with faults it takes to open a version for every tenant.",
    )

    # Per-tenant request rate (token buckets, per process); see app/controls/_ratelimit.py.
    rate_limit_per_s: float = Field(
        default=2_000.0,
        ge=0,
        description="Calls a tenant may make per second, in all the fleet's processes together "
        "(see rate_limit_scope); 0: no limit.",
    )
    rate_limit_burst: int = Field(
        default=2_000, ge=1, le=1_000_000, description="Calls a tenant may make at once."
    )
    rate_limit_tiers: dict[str, Rate] = Field(
        default_factory=dict,
        description='Per risk tier limits, e.g. {"write": {"rate_per_s": 50, "burst": 100}}',
    )
    rate_limit_max_buckets: int = Field(
        default=10_000, gt=0, le=10_000_000, description="Token buckets kept (LRU)."
    )
    rate_limit_hold_s: float = Field(
        default=0.5,
        ge=0,
        le=5,
        description="How long a refused call is held before its answer (0: answer at once).",
    )
    rate_limit_hold_max_per_tenant: int = Field(
        default=256, ge=0, le=100_000, description="A tenant's refusals held at once."
    )
    rate_limit_hold_max: int = Field(
        default=4_096, ge=0, le=1_000_000, description="Refusals held at once, all tenants."
    )
    rate_limit_scope: Literal["fleet", "process"] = Field(
        default="fleet",
        description="fleet: a tenant's rate is divided among the live processes sharing the "
        "storage; process: each process allows the whole rate.",
    )
    # Rollouts (app/rollout): shadow runs of a candidate version.
    rollout_shadow_max_in_flight: int = Field(
        default=2,
        ge=0,
        le=64,
        description="Shadow runs at once per process; past it a sampled call is not shadowed.",
    )
    rollout_shadow_opt_out: OriginList = Field(
        default_factory=list,
        description="Tenants whose calls are never shadowed on a candidate (comma-separated).",
    )
    # The fleet's shared control state (app/fleet): admin switches, promotions, members.
    fleet_sync_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often each process lists the control state in storage (±20% jitter).",
    )
    fleet_heartbeat_s: float = Field(
        default=5.0, gt=0, le=300, description="How often a process says it is alive."
    )
    fleet_member_ttl_s: float = Field(
        default=15.0,
        gt=0,
        description="A process not heard from for this long no longer counts as a member.",
    )
    control_stale_after_s: float = Field(
        default=10.0,
        gt=0,
        description="/readyz fails once the control state was last read this long ago.",
    )
    # Turns per tenant (app/controls/_gate.py): calls of one tenant worked on at once.
    tenant_max_active: int = Field(
        default=4, ge=0, le=10_000, description="A tenant's calls in progress at once; 0: no cap."
    )
    tenant_max_waiting: int = Field(
        default=64, ge=0, le=100_000, description="A tenant's calls waiting for a turn."
    )

    # Promotion events (signed CloudEvents webhook) and the polling fallback.
    promotion_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC key of promotion events; unset: the webhook answers 503."
    )
    promotion_event_window_s: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="An event's CloudEvents time must be this close to now, either way; "
        "its id is remembered (refused again) for as long.",
    )
    promotion_event_memory: int = Field(
        default=10_000, gt=0, le=1_000_000, description="Most event ids remembered at once."
    )
    catalog_poll_interval_s: float = Field(
        default=30.0,
        ge=0,
        description="How often storage is re-read, for promotions whose event was missed; "
        "0: never.",
    )

    # Sandbox ceilings and defaults; see the limits table in docs/operations.md.
    default_fuel: int = Field(
        default=100_000_000,
        gt=0,
        description="Fuel of an extension declaring none. Calibrated against the default "
        "deadline (bench/fuel_calibration.py): the tightest loop burns ~1 M fuel per CPU ms "
        "here, so a compute-bound loop ends with FUEL_EXHAUSTED (after ~100 ms of CPU), "
        "not TIMEOUT, even with a fifth of a core.",
    )
    default_memory_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Linear memory of an extension declaring none."
    )
    default_timeout_ms: int = Field(
        default=1_000, gt=0, description="Wall time of an extension declaring none."
    )
    default_output_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Output size of an extension declaring none."
    )
    default_log_bytes: int = Field(
        default=64 * 1024, gt=0, description="Log budget of an extension declaring none."
    )
    max_fuel: int = Field(
        default=40_000_000_000, gt=0, description="Most fuel any extension may declare."
    )
    max_memory_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0, description="Most linear memory an extension may declare."
    )
    max_timeout_ms: int = Field(
        default=10_000, gt=0, description="Most wall time an extension may declare."
    )
    max_output_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Largest output an extension may declare."
    )
    max_log_bytes: int = Field(
        default=256 * 1024, gt=0, description="Largest log budget an extension may declare."
    )
    max_wasm_stack_bytes: int = Field(
        default=512 * 1024, gt=0, description="Wasm stack of every guest (engine-wide)."
    )
    sandbox_watch_memory: bool = Field(
        default=True,
        description="Make guest memories in the sandbox, so a refused memory.grow is named "
        "MEMORY_LIMIT (Linux; costs a few µs per grow); false: wasmtime's own memories.",
    )
    component_spares: bool = Field(
        default=True,
        description="After a call of a component, make its next instance on a background "
        "thread (at most 8 held, a few MB each), so the next call does not wait ~1-2 ms "
        "for it; false: every call instantiates its own.",
    )
    default_max_host_calls: int = Field(
        default=32, ge=0, description="Host calls of an extension declaring none."
    )
    max_host_calls: int = Field(
        default=256, ge=0, description="Most host calls an extension may declare."
    )
    max_table_elements: int = Field(
        default=100_000,
        gt=0,
        description="Largest wasm table a guest may create (each element costs host memory).",
    )

    executor_threads: int = Field(
        default=2, gt=0, le=64, description="Threads for short pure guests run off the event loop."
    )
    executor_long_threads: int = Field(
        default=1,
        gt=0,
        le=64,
        description="Threads, at a lower CPU priority, for guests that compute long "
        "(keep below the core count so they can never hold every core).",
    )
    executor_io_threads: int = Field(
        default=8,
        gt=0,
        le=256,
        description="Threads for guests that may wait on host calls or sleeps (mostly idle).",
    )
    gil_switch_interval_us: int = Field(
        default=500,
        ge=100,
        le=100_000,
        description="Python's GIL switch interval, process-wide; shorter keeps the event loop "
        "responsive while guests call host functions on other threads.",
    )
    host_paced_calls_per_s: int = Field(
        default=1000,
        ge=0,
        description="Host-function calls per second, process-wide, for all guests past their "
        "unpaced host-function time together (each call takes the GIL); 0: no shared cap.",
    )
    inline_threshold_us: int = Field(
        default=1500,
        ge=0,
        description="Run pure guests whose runs average less CPU than this inline; 0 disables.",
    )
    inline_slice_ms: float = Field(
        default=2.0,
        gt=0,
        le=50,
        description="CPU time an inline guest may use before it is re-run on the pool.",
    )
    executor_queue: int = Field(
        default=64, ge=0, le=10_000, description="Calls waiting for a thread, per lane."
    )
    executor_slot_us: int = Field(
        default=5_000,
        ge=100,
        le=1_000_000,
        description="Estimated CPU one admission slot of the short lane stands for: cheap "
        "calls share a slot (a 100 us echo is a fiftieth of one), so a burst of them waits "
        "briefly instead of being refused; a call of unknown cost takes a whole slot.",
    )
    executor_short_max: int = Field(
        default=1024,
        ge=1,
        le=100_000,
        description="Most calls the short lane admits at once (running plus waiting), "
        "however cheap: the bound on its queue's length.",
    )
    executor_tenant_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Largest fraction of a lane's threads + waiting slots one tenant may hold "
        "(at least one); above it the tenant gets OVERLOADED at once.",
    )
    epoch_tick_ms: int = Field(
        default=10, gt=0, le=1000, description="How often guests check their deadline and cancel."
    )

    # -- what each part is built with ------------------------------------------
    @property
    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            max_wasm_stack_bytes=self.max_wasm_stack_bytes,
            watch_memory=self.sandbox_watch_memory,
            max_memory_bytes=self.max_memory_bytes,
            max_table_elements=self.max_table_elements,
            host_paced_calls_per_s=self.host_paced_calls_per_s,
            epoch_tick_ms=self.epoch_tick_ms,
            component_spares=self.component_spares,
        )

    @property
    def limit_bounds(self) -> LimitBounds:
        return LimitBounds(
            default=DeclaredLimits(
                fuel=self.default_fuel,
                memory_bytes=self.default_memory_bytes,
                timeout_ms=self.default_timeout_ms,
                output_bytes=self.default_output_bytes,
                max_host_calls=self.default_max_host_calls,
                log_bytes=self.default_log_bytes,
            ),
            maximum=DeclaredLimits(
                fuel=self.max_fuel,
                memory_bytes=self.max_memory_bytes,
                timeout_ms=self.max_timeout_ms,
                output_bytes=self.max_output_bytes,
                max_host_calls=self.max_host_calls,
                log_bytes=self.max_log_bytes,
            ),
        )

    @property
    def executor_config(self) -> ExecutorConfig:
        return ExecutorConfig(
            threads=self.executor_threads,
            long_threads=self.executor_long_threads,
            io_threads=self.executor_io_threads,
            queue=self.executor_queue,
            tenant_share=self.executor_tenant_share,
            slot_us=float(self.executor_slot_us),
            short_max=self.executor_short_max,
        )

    @property
    def inline_config(self) -> InlineConfig:
        return InlineConfig(threshold_us=self.inline_threshold_us, slice_ms=self.inline_slice_ms)

    @property
    def breaker_config(self) -> BreakerConfig:
        return BreakerConfig(
            window_s=self.breaker_window_s,
            min_calls=self.breaker_min_calls,
            failure_rate=self.breaker_failure_rate,
            cooldown_s=self.breaker_cooldown_s,
            min_tenants=self.breaker_min_tenants,
        )

    @property
    def rate_limit_config(self) -> RateLimitConfig:
        return RateLimitConfig(
            default=Rate(rate_per_s=self.rate_limit_per_s, burst=self.rate_limit_burst),
            tiers=dict(self.rate_limit_tiers),
            max_buckets=self.rate_limit_max_buckets,
            count_tenants=self.metrics_tenant_label,
            hold_s=self.rate_limit_hold_s,
            hold_max_per_tenant=self.rate_limit_hold_max_per_tenant,
            hold_max=self.rate_limit_hold_max,
        )

    @property
    def rollout_config(self) -> RolloutConfig:
        return RolloutConfig(
            shadow_max_in_flight=self.rollout_shadow_max_in_flight,
            shadow_opt_out=frozenset(self.rollout_shadow_opt_out),
        )

    @property
    def fleet_config(self) -> FleetConfig:
        return FleetConfig(
            sync_interval_s=self.fleet_sync_interval_s,
            heartbeat_s=self.fleet_heartbeat_s,
            member_ttl_s=self.fleet_member_ttl_s,
            stale_after_s=self.control_stale_after_s,
            divide_rate_limits=self.rate_limit_scope == "fleet",
        )

    @model_validator(mode="after")
    def _no_wildcard_cors_with_auth(self) -> Settings:
        """With callers authenticated, the pages that may read their answers are named too."""
        if self.auth_enabled and "*" in self.cors_allowed_origins:
            raise ValueError(
                'cors_allowed_origins "*" is refused while caller auth is on: list the '
                "origins allowed to call the service (EXTENSIONS_RUNTIME_CORS_ALLOWED_ORIGINS)"
            )
        return self


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once from the environment."""
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    prefix = "EXTENSIONS_RUNTIME_"
    for name, raw in settings.model_dump().items():
        if raw is None:
            continue
        value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        if isinstance(value, dict | list):
            value = json.dumps(value)
        env[prefix + name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
