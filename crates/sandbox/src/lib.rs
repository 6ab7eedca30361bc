//! The plugin runtime: wasmtime, configured so that a plugin can do nothing
//! its manifest does not allow and cannot take the host down with it.
//!
//! - components are compiled once per load, in a child process with its
//!   own time and memory bounds (`compiler`), or loaded from the artifact
//!   cache, and pre-instantiated; each invocation gets a fresh store;
//! - WASI grants nothing: no files, environment, arguments or sockets;
//!   stdout and stderr go to bounded buffers;
//! - each store has a memory cap (every memory and table of the instance
//!   counted together) and a deadline checked at every epoch tick, where a
//!   computing plugin also yields; a ticker thread advances the epoch every
//!   [`EPOCH_TICK`];
//! - plugins run on threads of their own (`workers`), so that the host
//!   goes on serving whatever they do.

#![warn(missing_docs)]

mod bindings;
pub mod breaker;
mod cache;
mod capabilities;
pub mod capability;
mod compiler;
mod config;
mod failure;
pub mod incremental;
/// Plugin manifests live in their own crate (no wasmtime, fuzzed alone);
/// this path is where the sandbox's users have always found them.
pub use autoheal_manifest as manifest;
mod output;
pub mod registry;
pub mod slots;
mod state;
mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use crate::manifest::Manifest;
use autoheal_core::alert::Alert;
pub use autoheal_core::util::sha256_hex;
use autoheal_core::util::{error_chain, truncate_with_marker};
use bindings::{v1, v2, v3, v4};
use cache::Lookup;
pub use cache::{ArtifactCache, CacheLocation};
use capability::{CapabilityCall, CapabilityGate, ExecutionMode, HostServices};
pub use compiler::{CHILD_COMMAND as COMPILER_COMMAND, child_main as compiler_main};
pub use config::SandboxConfig;
pub use failure::InvocationError;
use output::CapturedOutput;
pub use state::LogLine;
use state::{HostState, MemoryCap};
use workers::PluginWorkers;

/// How often the epoch advances; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Extra wall-clock time beyond a plugin's timeout before the host gives up
/// on an invocation stuck in a host call (epochs only interrupt wasm code).
const HOST_CALL_GRACE: Duration = Duration::from_millis(500);

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The component implements neither version of the plugin world.
    #[error(
        "component does not implement the autoheal:plugin/action world (0.4.0, 0.3.0, 0.2.0 or 0.1.0): {0}"
    )]
    WrongWorld(String),
    /// The component would need more of the sandbox than any plugin gets.
    #[error("component needs more than a plugin may have: {0}")]
    TooLarge(String),
    /// The compiler process could not be run or answered wrongly (a fault
    /// of the host's installation, not of the component).
    #[error("the component compiler failed: {0}")]
    Compiler(String),
}

/// Linear memories one plugin instance may have: components made by the
/// supported toolchains (Rust, componentize-py, componentize-js) have fewer
/// (docs/plugins.md, "The sandbox"); anything past that is refused at load, and the
/// pool is sized so that every invocation slot can hold this many.
pub const MAX_MEMORIES_PER_PLUGIN: u32 = 4;
/// Tables one plugin instance may have (the toolchains' components have a
/// handful; see [`MAX_MEMORIES_PER_PLUGIN`]).
pub const MAX_TABLES_PER_PLUGIN: u32 = 32;
/// Core instances one plugin instance may have.
pub const MAX_CORE_INSTANCES_PER_PLUGIN: u32 = 32;

/// What a plugin that did not fail answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It acted (in dry-run: would have): a summary of what.
    Acted(String),
    /// It decided not to act: why.
    Skipped(String),
}

impl Outcome {
    /// The plugin's words, whichever it answered.
    pub fn text(&self) -> &str {
        match self {
            Self::Acted(text) | Self::Skipped(text) => text,
        }
    }

    /// True for [`Outcome::Skipped`].
    pub fn is_skip(&self) -> bool {
        matches!(self, Self::Skipped(_))
    }

    /// A 0.1.0 plugin's `ok`: one string for acting and for declining. By
    /// the convention of the bundled plugins and SDKs of that version, an
    /// answer that starts with "skipped" (any case; "skipped: crm-api is
    /// healthy") declined.
    pub fn from_v1(answer: String) -> Self {
        let declined = answer
            .as_bytes()
            .get(..SKIPPED.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(SKIPPED.as_bytes()));
        if declined {
            Self::Skipped(answer)
        } else {
            Self::Acted(answer)
        }
    }

    fn map(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::Acted(text) => Self::Acted(f(text)),
            Self::Skipped(text) => Self::Skipped(f(text)),
        }
    }
}

/// How a 0.1.0 plugin's answer starts when it declined.
const SKIPPED: &str = "skipped";

/// The version of the plugin contract a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WitVersion {
    /// `autoheal:plugin@0.1.0`: `handle` answers a string.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `autoheal:plugin@0.2.0`: `handle` answers an `outcome`.
    #[serde(rename = "0.2.0")]
    V0_2,
    /// `autoheal:plugin@0.3.0`: containers may also be signalled, run
    /// commands in, have their logs read and be chosen by label.
    #[serde(rename = "0.3.0")]
    V0_3,
    /// `autoheal:plugin@0.4.0`: besides containers, allow-listed HTTP with
    /// secrets, Prometheus queries and per-plugin state.
    #[serde(rename = "0.4.0")]
    V0_4,
}

impl WitVersion {
    /// The version, as the WIT package names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_1 => "0.1.0",
            Self::V0_2 => "0.2.0",
            Self::V0_3 => "0.3.0",
            Self::V0_4 => "0.4.0",
        }
    }
}

/// Everything one invocation did.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The plugin's answer: what it did (or declined to), or why it failed.
    pub result: Result<Outcome, InvocationError>,
    /// Its capability calls, in order.
    pub calls: Vec<CapabilityCall>,
    /// What it logged through the `log` import.
    pub logs: Vec<LogLine>,
    /// Its stdout, cut at the output limit.
    pub stdout: String,
    /// Its stderr, cut at the output limit.
    pub stderr: String,
    /// Wall-clock time of the invocation.
    pub duration: Duration,
    /// The answer (or error) was longer than [`MAX_RESULT_BYTES`] and cut.
    pub result_truncated: bool,
    /// Calls that named something that is not a container name (recorded
    /// by length only).
    pub invalid_targets: usize,
    /// Calls refused because the budget of
    /// [`capability::MAX_CALLS_PER_INVOCATION`] was used up; they are not in
    /// `calls`.
    pub calls_over_budget: usize,
}

/// Longest answer or error string of a plugin kept (the rest is cut, with a marker).
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// A component pre-instantiated against the world it implements.
#[derive(Clone)]
pub enum ActionPre {
    /// `autoheal:plugin@0.1.0`.
    V1(v1::ActionPre<HostState>),
    /// `autoheal:plugin@0.2.0`.
    V2(v2::ActionPre<HostState>),
    /// `autoheal:plugin@0.3.0`.
    V3(v3::ActionPre<HostState>),
    /// `autoheal:plugin@0.4.0`.
    V4(v4::ActionPre<HostState>),
}

impl ActionPre {
    /// The version of the contract it implements.
    pub fn version(&self) -> WitVersion {
        match self {
            Self::V1(_) => WitVersion::V0_1,
            Self::V2(_) => WitVersion::V0_2,
            Self::V3(_) => WitVersion::V0_3,
            Self::V4(_) => WitVersion::V0_4,
        }
    }
}

/// A component ready to instantiate.
#[derive(Clone)]
pub struct LoadedComponent {
    /// The pre-instantiated component.
    pub pre: ActionPre,
    /// SHA-256 of the component file, hex.
    pub hash: String,
    /// Loaded from the artifact cache rather than compiled.
    pub from_cache: bool,
    /// Why a cached artifact found for it was not trusted (it was compiled
    /// again instead).
    pub cache_rejected: Option<String>,
    /// How long compiling it (or reading it from the cache) took, in
    /// milliseconds, not counting the wait for a compile slot.
    pub compile_ms: u64,
    /// How long it waited for a compile slot, in milliseconds.
    pub queued_ms: u64,
    /// When it was compiled with the incremental store: how many of its
    /// functions came from there.
    pub incremental: Option<incremental::IncrementalStats>,
}

/// Which instance allocator the engine got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocator {
    /// wasmtime's pooling allocator (fast instantiation).
    Pooling,
    /// On-demand allocation (where the pool cannot be reserved).
    OnDemand,
}

impl Allocator {
    /// The name in `host_started` and `GET /`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pooling => "pooling",
            Self::OnDemand => "on_demand",
        }
    }
}

/// The wasmtime engine and linker every plugin runs in, with its concurrency limit, output limit and epoch ticker.
pub struct PluginRuntime {
    engine: Engine,
    /// The linker of the newest world (0.3.0).
    linker: Linker<HostState>,
    /// The linkers of the 0.2.0 and 0.1.0 worlds: every world imports a
    /// root `log`, so one linker cannot serve two.
    linker_v3: Linker<HostState>,
    linker_v2: Linker<HostState>,
    linker_v1: Linker<HostState>,
    cache: ArtifactCache,
    /// The compiler's incremental store, beside the artifacts and under
    /// their key (none without a usable cache).
    incremental: Option<CacheLocation>,
    /// The program compiles run in, and the config it builds its engine from.
    compiler: PathBuf,
    sandbox: SandboxConfig,
    allocator: Allocator,
    permits: Semaphore,
    compile_slots: slots::CompileSlots,
    output_limit: usize,
    workers: PluginWorkers,
    _ticker: EpochTicker,
}

impl PluginRuntime {
    /// Builds the engine for these limits; with a cache location, compiled components are cached there.
    pub fn new(sandbox: &SandboxConfig, cache: Option<&CacheLocation>) -> wasmtime::Result<Self> {
        let (engine, allocator) = build_engine(sandbox)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        v4::Action::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)?;
        let mut linker_v3 = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker_v3)?;
        v3::Action::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker_v3, |s| s)?;
        let mut linker_v2 = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker_v2)?;
        v2::Action::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker_v2, |s| s)?;
        let mut linker_v1 = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker_v1)?;
        v1::Action::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker_v1, |s| s)?;
        let artifacts = match cache {
            Some(location) => ArtifactCache::open(location, &engine),
            None => ArtifactCache::disabled(),
        };
        let incremental = cache
            .filter(|_| artifacts.is_enabled())
            .map(|location| CacheLocation {
                dir: location.dir.join(incremental::DIR_NAME),
                key_file: location.key_file.clone(),
            });
        let compiler = compiler::compiler_program(sandbox)?;
        let ticker = EpochTicker::start(engine.clone());
        // One core fewer than the machine has (at least one thread): plugins
        // yield at every tick and mostly wait on the engine, so they share
        // threads well, and a core is always left for the server even when
        // every plugin computes (BENCHMARKS.md, "A busy plugin": with a
        // thread per core the routes' p99 was 3-25x idle, with one fewer 0.4-1.3x).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = cores.saturating_sub(1).max(1);
        let workers = PluginWorkers::start((sandbox.max_concurrent as usize).min(threads))?;
        Ok(Self {
            engine,
            linker,
            linker_v3,
            linker_v2,
            linker_v1,
            cache: artifacts,
            incremental,
            compiler,
            sandbox: sandbox.clone(),
            allocator,
            permits: Semaphore::new(sandbox.max_concurrent as usize),
            compile_slots: slots::CompileSlots::new(sandbox.compile_concurrency as usize),
            output_limit: sandbox.output_limit_bytes,
            workers,
            _ticker: ticker,
        })
    }

    /// The instance allocator the engine got.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// Compiles (or loads from the cache) and pre-instantiates a component,
    /// checking that it implements the `action` world and fits the sandbox.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        let began = Instant::now();
        let mut queued = Duration::ZERO;
        let hash = sha256_hex(bytes);
        let mut cache_rejected = None;
        let mut incremental = None;
        let cached = match self.cache.get(&hash) {
            Lookup::Hit(artifact) => {
                // SAFETY: the artifact's MAC, under a key this host keeps
                // outside the cache directory, proves that this host's
                // `precompile_component` wrote it for this very component
                // and an engine with the same compatibility key.
                unsafe { artifact.deserialize(&self.engine) }
                    .map_err(|e| {
                        cache_rejected = Some(format!("cached artifact not loadable: {}", error_chain(&*e)))
                    })
                    .ok()
            }
            Lookup::Rejected(why) => {
                cache_rejected = Some(why);
                None
            }
            Lookup::Miss => None,
        };
        if let Some(why) = &cache_rejected {
            tracing::warn!(component = %hash, reason = %why, "compile cache entry not trusted; recompiling");
        }
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => {
                check_footprint(&component)?;
                component
            }
            None => {
                // A cache hit needs no slot: only the compiler child is bounded.
                let waited = Instant::now();
                let slot = self.compile_slots.take(bytes.len());
                queued = waited.elapsed();
                let compiled =
                    compiler::compile(&self.compiler, &self.sandbox, self.incremental.as_ref(), bytes);
                drop(slot);
                let compiler::Compiled {
                    artifact,
                    incremental: stats,
                } = compiled?;
                incremental = stats;
                // SAFETY: produced just above by this host's own binary, for
                // an engine with this one's settings, and read back whole
                // from its stdout (a truncated or foreign artifact fails the
                // header check or deserialisation's own checks).
                let component =
                    unsafe { Component::deserialize(&self.engine, &artifact) }.map_err(not_loadable)?;
                // Checked before it is cached: the cache holds only what loads.
                check_footprint(&component)?;
                self.cache.put(&hash, &artifact);
                drop(artifact);
                // Kept mapped from the cache rather than as the copy just
                // made: only the code that runs stays resident.
                match self.cache.get(&hash) {
                    // SAFETY: as for any verified cache entry, above.
                    Lookup::Hit(cached) => unsafe { cached.deserialize(&self.engine) }.unwrap_or(component),
                    _ => component,
                }
            }
        };
        memory_images(&component)?;
        let pre = self.pre_instantiate(&component)?;
        Ok(LoadedComponent {
            pre,
            hash,
            from_cache,
            cache_rejected,
            compile_ms: began.elapsed().saturating_sub(queued).as_millis() as u64,
            queued_ms: queued.as_millis() as u64,
            incremental,
        })
    }

    /// Pre-instantiates `component` against the world it implements: the
    /// newest one (0.4.0) first, then each older one down to the first
    /// (0.1.0). Which one is decided here, once per load, by what it imports
    /// and exports.
    fn pre_instantiate(&self, component: &Component) -> Result<ActionPre, LoadError> {
        let newest_error = match self
            .linker
            .instantiate_pre(component)
            .and_then(v4::ActionPre::new)
        {
            Ok(pre) => return Ok(ActionPre::V4(pre)),
            Err(e) => error_chain(&*e),
        };
        if let Ok(pre) = self
            .linker_v3
            .instantiate_pre(component)
            .and_then(v3::ActionPre::new)
        {
            return Ok(ActionPre::V3(pre));
        }
        if let Ok(pre) = self
            .linker_v2
            .instantiate_pre(component)
            .and_then(v2::ActionPre::new)
        {
            return Ok(ActionPre::V2(pre));
        }
        match self
            .linker_v1
            .instantiate_pre(component)
            .and_then(v1::ActionPre::new)
        {
            Ok(pre) => Ok(ActionPre::V1(pre)),
            // What the newest version lacks is the useful part: new plugins
            // are built for it.
            Err(_) => Err(LoadError::WrongWorld(newest_error)),
        }
    }

    /// Runs `work` on the plugin threads to its end: the host's handling of
    /// an action (its wait for a place, its invocation, its events), so that
    /// an action's place to run is handed from one action to the next on the
    /// threads that run them, not across to the server's threads and back
    /// (BENCHMARKS.md, "Actions run with the limits as shipped").
    pub fn spawn_action<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.workers.spawn_detached(work)
    }

    /// Runs `handle` once in a fresh, capped store, on the plugin threads.
    pub async fn invoke(
        &self,
        component: &LoadedComponent,
        manifest: &Manifest,
        alert: &Alert,
        mode: ExecutionMode,
        services: HostServices,
    ) -> Invocation {
        let _permit = self.permits.acquire().await.expect("semaphore is never closed");
        let run = Run {
            engine: self.engine.clone(),
            pre: component.pre.clone(),
            gate: CapabilityGate::new(
                manifest.name.clone(),
                manifest.container_grant.clone(),
                mode,
                services,
                manifest.stop_timeout,
                breaker::Joining {
                    within: manifest.target_cooldown,
                    alert: alert.fingerprint.clone(),
                },
            )
            .with_http(manifest.http_grant.clone())
            .with_grants(manifest.prometheus, manifest.state),
            memory_bytes: manifest.memory_bytes,
            timeout: manifest.timeout,
            config: manifest.config.clone(),
            alert: WitAlert(alert.clone()),
            output_limit: self.output_limit,
        };
        let started = Instant::now();
        match self.workers.spawn(run.execute()).await {
            Ok(invocation) => invocation,
            // The run panicked inside the host (never the plugin's doing:
            // its traps are errors): report it as this invocation's failure.
            Err(join_error) => Invocation {
                result: Err(InvocationError::Trap(format!(
                    "host error while running the plugin: {join_error}"
                ))),
                calls: Vec::new(),
                logs: Vec::new(),
                stdout: String::new(),
                stderr: String::new(),
                duration: started.elapsed(),
                result_truncated: false,
                invalid_targets: 0,
                calls_over_budget: 0,
            },
        }
    }
}

/// Why wasmtime would not compile or load a component.
fn not_loadable(error: wasmtime::Error) -> LoadError {
    not_loadable_message(error_chain(&*error))
}

/// [`not_loadable`], for an error that arrives as text (from the compiler).
fn not_loadable_message(why: String) -> LoadError {
    // The pooling allocator checks each module's memories and tables, and
    // the component's core instances, as the component is loaded: that is a
    // size past the bounds, not a defect. (Its words are pinned by a test.)
    if why.contains("pooling allocator") {
        LoadError::TooLarge(why)
    } else {
        LoadError::InvalidComponent(why)
    }
}

/// Makes the copy-on-write images of the component's memories now, at load,
/// rather than in its first invocation. Sealing an image's memfd can fail
/// with EBUSY while the kernel still holds a page just written to it (a
/// `plugin test` under load trapped so, once): a transient, tried again a
/// few times here, where a retry is harmless and no alert waits on it.
fn memory_images(component: &Component) -> Result<(), LoadError> {
    const TRIES: u32 = 5;
    let mut attempt = 1;
    loop {
        match component.initialize_copy_on_write_image() {
            Ok(()) => return Ok(()),
            Err(e) if attempt < TRIES && error_chain(&*e).contains("seals") => {
                std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
                attempt += 1;
            }
            Err(e) => return Err(not_loadable(e)),
        }
    }
}

/// Refuses a component whose instance would need more memories, tables or
/// core instances than a plugin may have (counted from its definitions,
/// exactly as instantiation will allocate them).
fn check_footprint(component: &Component) -> Result<(), LoadError> {
    let Some(needs) = component.resources_required() else {
        return Err(LoadError::TooLarge(
            "it imports core modules, so what it allocates cannot be bounded".into(),
        ));
    };
    if needs.num_memories > MAX_MEMORIES_PER_PLUGIN {
        return Err(LoadError::TooLarge(format!(
            "{} linear memories (a plugin may have {MAX_MEMORIES_PER_PLUGIN})",
            needs.num_memories
        )));
    }
    if needs.num_tables > MAX_TABLES_PER_PLUGIN {
        return Err(LoadError::TooLarge(format!(
            "{} tables (a plugin may have {MAX_TABLES_PER_PLUGIN})",
            needs.num_tables
        )));
    }
    Ok(())
}

/// One invocation, owned, so that it can run on the plugin threads.
struct Run {
    engine: Engine,
    pre: ActionPre,
    gate: CapabilityGate,
    memory_bytes: usize,
    timeout: Duration,
    config: Vec<(String, String)>,
    alert: WitAlert,
    output_limit: usize,
}

impl Run {
    async fn execute(self) -> Invocation {
        let stdout = CapturedOutput::new(self.output_limit);
        let stderr = CapturedOutput::new(self.output_limit);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = Store::new(
            &self.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limiter: MemoryCap::new(self.memory_bytes),
                gate: self.gate,
                logs: Vec::new(),
                logs_dropped: 0,
            },
        );
        store.limiter(|state| &mut state.limiter);
        // At every tick the plugin computes through, it is stopped if its
        // deadline has passed and otherwise yields: a plugin that computes
        // never holds a thread that other tasks wait for.
        let started = Instant::now();
        let deadline = started + self.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        let (pre, alert, config) = (self.pre, self.alert, self.config);
        let outcome = tokio::time::timeout(self.timeout + HOST_CALL_GRACE, async {
            match pre {
                ActionPre::V4(pre) => {
                    let action = pre.instantiate_async(&mut store).await?;
                    let answer = action.call_handle(&mut store, &alert.v4(), &config).await?;
                    Ok(answer.map(|outcome| match outcome {
                        v4::types::Outcome::Acted(text) => Outcome::Acted(text),
                        v4::types::Outcome::Skipped(text) => Outcome::Skipped(text),
                    }))
                }
                ActionPre::V3(pre) => {
                    let action = pre.instantiate_async(&mut store).await?;
                    let answer = action.call_handle(&mut store, &alert.v3(), &config).await?;
                    Ok(answer.map(|outcome| match outcome {
                        v3::types::Outcome::Acted(text) => Outcome::Acted(text),
                        v3::types::Outcome::Skipped(text) => Outcome::Skipped(text),
                    }))
                }
                ActionPre::V2(pre) => {
                    let action = pre.instantiate_async(&mut store).await?;
                    let answer = action.call_handle(&mut store, &alert.v2(), &config).await?;
                    Ok(answer.map(|outcome| match outcome {
                        v2::types::Outcome::Acted(text) => Outcome::Acted(text),
                        v2::types::Outcome::Skipped(text) => Outcome::Skipped(text),
                    }))
                }
                ActionPre::V1(pre) => {
                    let action = pre.instantiate_async(&mut store).await?;
                    let answer = action.call_handle(&mut store, &alert.v1(), &config).await?;
                    Ok(answer.map(Outcome::from_v1))
                }
            }
        })
        .await;
        let duration = started.elapsed();

        let mut result_truncated = false;
        let mut bounded = |text: String| match truncate_with_marker(&text, MAX_RESULT_BYTES) {
            Some(cut) => {
                result_truncated = true;
                cut
            }
            None => text,
        };
        // What the plugin says is scrubbed of the host's secrets too.
        let gate = &store.data().gate;
        let result = match outcome {
            Err(_elapsed) => Err(InvocationError::Timeout),
            Ok(Ok(Ok(answer))) => Ok(answer.map(|text| bounded(gate.scrub(&text)))),
            Ok(Ok(Err(reason))) => Err(failure::returned(
                bounded(gate.scrub(&reason)),
                store.data().limiter.exceeded,
            )),
            Ok(Err(error)) => Err(failure::trapped(&error, store.data().limiter.exceeded)),
        };
        let state = store.into_data();
        let invalid_targets = state.gate.invalid_targets();
        let calls_over_budget = state.gate.over_budget();
        let mut logs = state.logs;
        if state.logs_dropped > 0 {
            logs.push(LogLine {
                level: "warn".into(),
                message: format!("[{} more log lines dropped]", state.logs_dropped),
            });
        }
        Invocation {
            result,
            calls: state.gate.into_calls(),
            logs,
            stdout: stdout.text(),
            stderr: stderr.text(),
            duration,
            result_truncated,
            invalid_targets,
            calls_over_budget,
        }
    }
}

/// An alert as both versions of the contract spell it (one shape, two
/// Rust types): converted when the plugin's version is known.
struct WitAlert(Alert);

macro_rules! to_wit_alert {
    ($name:ident, $version:ident) => {
        fn $name(&self) -> $version::types::Alert {
            use $version::types::{Alert, AlertStatus};
            let alert = &self.0;
            Alert {
                status: if alert.is_firing() {
                    AlertStatus::Firing
                } else {
                    AlertStatus::Resolved
                },
                labels: alert.labels.clone().into_iter().collect(),
                annotations: alert.annotations.clone().into_iter().collect(),
                starts_at: alert.starts_at.clone(),
                ends_at: alert.ends_at.clone(),
                fingerprint: alert.fingerprint.clone(),
                generator_url: alert.generator_url.clone(),
            }
        }
    };
}

impl WitAlert {
    to_wit_alert!(v1, v1);
    to_wit_alert!(v2, v2);
    to_wit_alert!(v3, v3);
    to_wit_alert!(v4, v4);
}

/// Bytes of each freed linear memory and table kept resident and reset in
/// place; a plugin's working set (the bundled ones touch ~1 MiB) fits.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// What every engine here is built with, the host's and the compiler's: what
/// changes an artifact is set here once, so that both agree.
fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    config
}

fn build_engine(sandbox: &SandboxConfig) -> wasmtime::Result<(Engine, Allocator)> {
    let mut config = engine_config();

    if !sandbox.pooling {
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        return Ok((Engine::new(&config)?, Allocator::OnDemand));
    }
    let slots = sandbox.max_concurrent * 2;
    let mut pooling = PoolingAllocationConfig::default();
    // Every invocation slot can hold a plugin at its per-instance bounds, so
    // one plugin's instance cannot take the pool from the others.
    pooling
        .total_component_instances(slots)
        // Per module too, so that a module with many memories is refused by
        // the same check, with the same words, as a component with many.
        .max_memories_per_module(MAX_MEMORIES_PER_PLUGIN)
        .max_memories_per_component(MAX_MEMORIES_PER_PLUGIN)
        .max_tables_per_component(MAX_TABLES_PER_PLUGIN)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_PLUGIN)
        .total_core_instances(sandbox.max_concurrent * MAX_CORE_INSTANCES_PER_PLUGIN)
        .total_memories(sandbox.max_concurrent * MAX_MEMORIES_PER_PLUGIN)
        .total_tables(sandbox.max_concurrent * MAX_TABLES_PER_PLUGIN)
        .total_stacks(slots)
        .max_memory_size((sandbox.max_memory_mb as usize) << 20)
        // A freed slot is reset to its original contents with memset, only
        // the pages the plugin dirtied (found with PAGEMAP_SCAN where the
        // kernel has it), instead of madvise: an madvise per invocation cost
        // a TLB shootdown on every core and a page fault per page touched by
        // the next one, ~70 % of the act path's CPU (BENCHMARKS.md).
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Engine::new(&config) {
        Ok(engine) => Ok((engine, Allocator::Pooling)),
        Err(e) => {
            // Some machines cannot reserve the pool's address space
            // (ulimit -v, overcommit settings): run slower rather than not at all.
            tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Ok((Engine::new(&config)?, Allocator::OnDemand))
        }
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch ticker thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn a_0_1_0_answer_that_starts_with_skipped_in_any_case_is_a_skip() {
        for skip in [
            "skipped: crm-api is healthy",
            "Skipped: nothing to do here",
            "SKIPPED",
            "skipped crm-api started 39s ago (min_uptime_sec = 60)",
        ] {
            assert_eq!(
                Outcome::from_v1(skip.into()),
                Outcome::Skipped(skip.into()),
                "{skip}"
            );
        }
        for acted in [
            "restarted crm-api",
            "restarted crm-api; skipped: db is healthy",
            " skipped: a space first",
            "skip",
            "",
            // Not ASCII at the cut: no panic, not a skip.
            "skippé: x",
        ] {
            assert_eq!(
                Outcome::from_v1(acted.into()),
                Outcome::Acted(acted.into()),
                "{acted}"
            );
        }
    }
}
