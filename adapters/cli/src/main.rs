//! `emr`: the EMR Ledger binary.
//!
//! - `emr serve`: the command API over the configured event store (embedded by
//!   default: nothing to install).
//! - `emr demo`: a scripted clinical day through the same application layer,
//!   ending with a GDPR erasure, printed as JSON.
//! - `emr log`: the event log, PHI sealed, as JSON lines.
//! - `emr fl`: federated learning: privacy budgets and the reference experiment.

mod ai;
mod audit;
mod backup;
mod bridge;
mod demo;
mod evm;
mod fl;
mod read_models;
mod settings;
mod telemetry;
mod wiring;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::settings::Settings;

#[derive(Parser)]
#[command(name = "emr", version, about = "EMR Ledger: an audit-grade, event-sourced electronic medical record backend")]
struct Cli {
    /// Configuration file (TOML); defaults to ./emr.toml when present.
    #[arg(long, global = true, env = "EMR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve,
    /// Content ids of attachment blobs.
    Blobs {
        #[command(subcommand)]
        action: BlobAction,
    },
    /// Inspect and rotate the key-encryption keys that wrap patients' data keys.
    Keys {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Manage accounts from the server itself.
    Accounts {
        #[command(subcommand)]
        action: AccountAction,
    },
    /// Run a scripted clinical day end to end and print what happened.
    Demo,
    /// Write a consistent backup (log, wrapped keys, anchors, embedded blobs) and
    /// its manifest into a new directory; safe while serving. The keyring is not
    /// included: keep it in your secret store.
    Backup {
        /// The new directory.
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into this (empty) deployment; read models rebuild when
    /// projectors next run.
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Verify the event log against its anchored Merkle tree heads.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Anchor the event log (signed Merkle tree heads) and mirror heads to the
    /// configured EVM chains, following the log until interrupted.
    Anchor,
    /// Deploy the Merkle anchor contract to an EVM chain (key in EMR_EVM_PRIVATE_KEY).
    EvmDeploy {
        /// JSON-RPC URL of the chain.
        #[arg(long)]
        url: String,
    },
    /// The cross-chain bridge: deploy its contract, run a validator or a relayer.
    Bridge {
        #[command(subcommand)]
        action: BridgeAction,
    },
    /// Run, rebuild or inspect the MySQL read models.
    Projections {
        #[command(subcommand)]
        action: ProjectionAction,
    },
    /// Print one aggregate's full history (actors, commands, causation; PHI sealed) as JSON lines.
    History {
        /// patient, medical_record or access_grant.
        aggregate_type: String,
        /// Its id.
        aggregate_id: String,
    },
    /// Print a record as it was at a log position or an instant (point-in-time replay).
    Replay {
        /// The record id.
        record_id: String,
        /// Replay commits up to this position.
        #[arg(long, conflicts_with = "at_time")]
        at_position: Option<u64>,
        /// Replay commits recorded up to this instant (RFC 3339).
        #[arg(long)]
        at_time: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// AI-assisted diagnosis: run a model on images or DICOM files.
    Ai {
        #[command(subcommand)]
        action: ai::AiAction,
    },
    /// Federated learning: the ε of a privacy configuration, the reference experiment.
    Fl {
        #[command(subcommand)]
        action: fl::FlAction,
    },
    /// Print the event log (PHI sealed) as JSON lines.
    Log {
        /// First position.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most commits to print.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum BlobAction {
    /// Print the CID IPFS gives a file (streaming, any size): CIDv1 with raw
    /// leaves as the blob store assigns, or with --v0 what Kubo's default add gives.
    Cid {
        /// The file.
        file: PathBuf,
        /// CIDv0 (`ipfs add` defaults) instead of CIDv1 with raw leaves.
        #[arg(long)]
        v0: bool,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// Print how many data keys each KEK wraps, as JSON: a KEK that wraps none
    /// may be removed from the keyring.
    Status,
    /// Re-wrap every live data key under the active KEK (the keyring's first
    /// entry). Events and blobs are untouched; safe while serving and to repeat.
    Rotate,
    /// Write a new token signing key into `auth.keys_dir` and print its id: it
    /// signs after the next start, older keys keep verifying. Also how a
    /// deployment's shared key directory (a Kubernetes Secret) is made.
    NewSigningKey,
}

#[derive(Subcommand)]
enum AccountAction {
    /// Open the first administrator account (password from EMR_ADMIN_PASSWORD);
    /// it then opens every other account over the API.
    CreateAdmin {
        /// Login name.
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum BridgeAction {
    /// Deploy the BridgeAnchor contract (deployer key in EMR_EVM_PRIVATE_KEY);
    /// prints its address.
    Deploy {
        /// JSON-RPC URL of the target chain.
        #[arg(long)]
        url: String,
        /// The validators' addresses, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        validators: Vec<String>,
        /// Signatures needed to accept a head or rotate the set (k of n).
        #[arg(long)]
        threshold: u8,
    },
    /// Re-derive each tree head from the log and sign it for every configured
    /// chain (key in the variable `bridge.validator_key_env` names).
    Validator {
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Submit heads k validators signed to every configured chain, follow them to
    /// their confirmations and resubmit after a reorg (key in `bridge.relayer_key_env`).
    Relay {
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Replay the whole log, recompute every leaf, check every head, signature,
    /// chain link and consistency proof; exit non-zero naming the first bad event.
    /// With --patient, prove that patient's events one by one instead.
    Verify {
        /// Verify only this patient's history (their records and grants included).
        #[arg(long)]
        patient: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProjectionAction {
    /// Fold the log into the read models, following it until interrupted.
    Run,
    /// Rebuild one read model from the first event and swap it in.
    Rebuild {
        /// patient_directory, record_index, access or dashboard.
        name: String,
    },
    /// Print each read model's position and lag as JSON.
    Status,
}

/// mimalloc rather than glibc's malloc: the command path allocates many small
/// JSON values, where malloc and free took about a seventh of the machine
/// (perf, bench-core); the benchmarks link the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS backend for every rustls client of the process (Fabric, and any
    // https endpoint), chosen before the first connection.
    emr_fabric::install_crypto_provider();
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    let telemetry = telemetry::init(&settings.telemetry)?;
    let outcome = run(cli.command, settings).await;
    telemetry.shutdown().await;
    outcome
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(&settings).await,
        Command::Ai { action: ai::AiAction::Predict(args) } => {
            // CPU-bound: off the async workers.
            tokio::task::spawn_blocking(move || ai::predict(&args, std::io::stdout().lock())).await?
        }
        Command::Ai { action: ai::AiAction::Install { model, card } } => {
            let dir = settings.diagnosis_models_dir();
            let path = tokio::task::spawn_blocking(move || ai::install(&dir, &card, &model)).await??;
            println!("{}", path.display());
            Ok(())
        }
        Command::Fl { action: fl::FlAction::Epsilon { q, sigma, steps, delta } } => {
            println!("{}", fl::epsilon(q, sigma, steps, delta)?);
            Ok(())
        }
        Command::Fl { action: fl::FlAction::Client(args) } => {
            println!("{}", serde_json::to_string(&fl::client(&args).await?)?);
            Ok(())
        }
        Command::Fl { action: fl::FlAction::Simulate(args) } => {
            println!("{}", serde_json::to_string_pretty(&fl::simulate(&args).await?)?);
            Ok(())
        }
        Command::Blobs { action: BlobAction::Cid { file, v0 } } => {
            let layout = if v0 { emr_ipfs::Layout::V0 } else { emr_ipfs::Layout::V1RawLeaves };
            let mut reader = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let mut builder = emr_ipfs::DagBuilder::new(layout, |_: &emr_ipfs::Cid, _: &[u8]| {});
            let mut buffer = vec![0_u8; 1 << 20];
            loop {
                let read = std::io::Read::read(&mut reader, &mut buffer).with_context(|| format!("reading {}", file.display()))?;
                if read == 0 {
                    break;
                }
                builder.write(&buffer[..read]);
            }
            println!("{}", builder.finish());
            Ok(())
        }
        Command::Keys { action: KeyAction::NewSigningKey } => {
            let dir = settings.auth_keys_dir();
            let kid = emr_auth::SigningKeys::add_to_dir(&dir).with_context(|| format!("auth.keys_dir {}", dir.display()))?;
            // The OpenID Connect key travels with them (a secret made from this directory).
            emr_auth::oidc::IdTokenKey::in_dir(&dir).with_context(|| format!("auth.keys_dir {}", dir.display()))?;
            println!("{}", serde_json::json!({"kid": kid, "dir": dir}));
            Ok(())
        }
        Command::Keys { action: action @ (KeyAction::Status | KeyAction::Rotate) } => {
            let ports = wiring::ports(&settings).await?;
            let vault = emr_eventstore::KeyVault::new(ports.kek, ports.keys);
            let report = match action {
                KeyAction::Rotate => serde_json::to_value(vault.rotate().await?)?,
                _ => serde_json::to_value(vault.census().await?)?,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Accounts { action: AccountAction::CreateAdmin { username } } => {
            let password = std::env::var("EMR_ADMIN_PASSWORD").context("set EMR_ADMIN_PASSWORD to the new administrator's password")?;
            let ports = wiring::ports(&settings).await?;
            let identity = wiring::identity(&settings, &ports).await?;
            let registration = emr_auth::Registration {
                username: emr_domain::account::Username::parse(&username)?,
                password,
                role: emr_domain::actor::Role::Admin,
                profile: None,
            };
            let system = emr_domain::actor::Actor::system();
            let user_id = identity.register(Some(&system), registration, None, emr_domain::ids::CommandId::new()).await?;
            println!("{}", serde_json::json!({"user_id": user_id, "username": username, "role": "admin"}));
            Ok(())
        }
        Command::Demo => demo::run(&wiring::clinic(&settings).await?).await,
        Command::Backup { to } => {
            let manifest = backup::backup(&settings, &wiring::ports(&settings).await?, &to).await?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(())
        }
        Command::Restore { from } => {
            let manifest = backup::restore(&settings, &wiring::ports(&settings).await?, &from).await?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(())
        }
        Command::Projections { action } => projections(&settings, action).await,
        Command::Audit { action: AuditAction::Verify { patient: Some(patient) } } => {
            let ports = wiring::ports(&settings).await?;
            let report = audit::verify_patient(&settings, ports.log, &patient).await?;
            if !report.ok {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Audit { action: AuditAction::Verify { patient: None } } => {
            let ports = wiring::ports(&settings).await?;
            let mut report = audit::verify(&settings, ports.log).await?;
            let on_chains = if report.ok {
                match evm::check(&settings).await? {
                    Some(failure) => Some(failure),
                    None => bridge::check(&settings).await?,
                }
            } else {
                None
            };
            if let Some(failure) = on_chains {
                eprintln!("FAILED ({}): {}", failure.kind, failure.detail);
                report.ok = false;
                report.failure = Some(failure);
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            if !report.ok {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Bridge { action: BridgeAction::Deploy { url, validators, threshold } } => {
            println!("{}", bridge::deploy(&url, &validators, threshold).await?);
            Ok(())
        }
        Command::Bridge { action: BridgeAction::Validator { once } } => bridge::validator(&settings, once).await,
        Command::Bridge { action: BridgeAction::Relay { once } } => bridge::relay(&settings, once).await,
        Command::EvmDeploy { url } => {
            println!("{}", evm::deploy(&url).await?);
            Ok(())
        }
        Command::Anchor => {
            let ports = wiring::ports(&settings).await?;
            let ledger = audit::ledger(&settings).await?;
            let worker = audit::worker(&settings, ports.log, ledger.clone()).await?;
            tracing::info!(key = %worker.public_key(), chains = settings.audit.evm.len(), "anchor worker running");
            let view = Some(read_models::ReadModels::open(&settings).await?.db);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let relayer = tokio::spawn(evm::relay(settings.clone(), ledger, view, stopped));
            worker.run(shutdown()).await;
            let _ = stop.send(true);
            relayer.await?;
            Ok(())
        }
        Command::History { aggregate_type, aggregate_id } => {
            let clinic = wiring::clinic(&settings).await?;
            print_lines(&clinic.history(&aggregate_type, &aggregate_id).await?)
        }
        Command::Replay { record_id, at_position, at_time } => {
            let clinic = wiring::clinic(&settings).await?;
            let record_id = emr_domain::ids::RecordId::parse(&record_id)?;
            let cutoff = match (at_position, at_time) {
                (Some(position), _) => emr_eventstore::Cutoff::Position(position),
                (None, Some(time)) => emr_eventstore::Cutoff::Time(time),
                (None, None) => emr_eventstore::Cutoff::Time(chrono::Utc::now()),
            };
            let replayed = clinic.record_as_of(record_id, cutoff).await?;
            let record = replayed.state();
            let versions: Vec<_> = record
                .versions()
                .iter()
                .map(|v| serde_json::json!({"version": v.version, "shredded": v.content.is_shredded(), "content": v.content.value()}))
                .collect();
            let view = serde_json::json!({
                "record_id": record_id, "patient_id": record.patient_id(), "status": record.status(),
                "position": replayed.position(), "sequence": replayed.sequence(), "versions": versions,
            });
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(())
        }
        Command::Log { from, limit } => {
            let clinic = wiring::clinic(&settings).await?;
            print_lines(&clinic.log().read(from, limit).await?)
        }
    }
}

fn print_lines(events: &[emr_eventstore::RecordedEvent]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for event in events {
        serde_json::to_writer(&mut out, event)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    }
    Ok(())
}

async fn projections(settings: &Settings, action: ProjectionAction) -> anyhow::Result<()> {
    let ports = wiring::ports(settings).await?;
    let models = read_models::ReadModels::open(settings).await?;
    match action {
        ProjectionAction::Run => {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let runner = models.run_all(ports.log.clone(), wiring::search_index(settings, &ports)?, stopped);
            tokio::pin!(runner);
            tokio::select! {
                () = &mut runner => {}
                () = shutdown() => {
                    let _ = stop.send(true);
                    runner.await;
                }
            }
        }
        ProjectionAction::Rebuild { name } => {
            let started = std::time::Instant::now();
            let checkpoint = models.rebuild(&name, ports.log.clone(), wiring::search_index(settings, &ports)?).await?;
            let report = serde_json::json!({
                "projection": name, "position": checkpoint.position, "events": checkpoint.events,
                "seconds": started.elapsed().as_secs_f64(),
            });
            println!("{report}");
        }
        ProjectionAction::Status => println!("{}", serde_json::to_string_pretty(&models.status(ports.log).await?)?),
    }
    Ok(())
}

/// Runs this process's roles (`serve.roles`) until SIGTERM or Ctrl-C: the HTTP
/// server stops taking connections and finishes the requests it has (every
/// acknowledged command is written), then the workers stop between batches.
async fn serve(settings: &Settings) -> anyhow::Result<()> {
    use settings::Role;
    let roles = &settings.serve;
    tracing::info!(roles = ?roles.roles, "starting");
    let ports = wiring::ports(settings).await?;
    let models = read_models::ReadModels::open(settings).await?;
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    let search_index = wiring::blind_index(settings)?;
    let read_models = Some(emr_http::ReadModelState { db: models.db.clone(), log: ports.log.clone(), search_index: search_index.clone() });
    // One identity per process: with the in-memory session store (no Redis), the
    // detector's re-authentication must reach the API's sessions.
    let identity = match roles.runs(Role::Api) || roles.runs(Role::Detector) {
        true => Some(wiring::identity(settings, &ports).await?),
        false => None,
    };
    if let Some(identity) = identity.clone().filter(|_| roles.runs(Role::Detector)) {
        let worker = wiring::detection_worker(settings, &ports, models.db.clone(), identity).await?;
        let mut stopped = stop.subscribe();
        let run = async move { worker.run(async move { drop(stopped.wait_for(|stop| *stop).await) }).await };
        workers.push(("detector", tokio::spawn(run)));
    }
    if roles.runs(Role::Projector) {
        let (log, stopped) = (ports.log.clone(), stop.subscribe());
        let search = emr_projections::SearchIndex::new(ports.phi_codec(), search_index.clone());
        workers.push(("projectors", tokio::spawn(async move { models.run_all(log, search, stopped).await })));
    }
    // One ledger (one Gateway connection, for Fabric) for the receipts, the
    // worker, the relayer and the periodic verification.
    let audit = match roles.runs(Role::Anchor) {
        true => {
            let ledger = audit::ledger(settings).await?;
            let worker = audit::worker(settings, ports.log.clone(), ledger.clone()).await?;
            tracing::info!(key = %worker.public_key(), chains = settings.audit.evm.len(), "anchor worker running");
            let mut stopped = stop.subscribe();
            let run = async move { worker.run(async move { drop(stopped.wait_for(|stop| *stop).await) }).await };
            workers.push(("anchor worker", tokio::spawn(run)));
            let view = read_models.as_ref().map(|models| models.db.clone());
            workers.push(("EVM relayer", tokio::spawn(evm::relay(settings.clone(), ledger.clone(), view, stop.subscribe()))));
            let verify = audit::verify_periodically(settings.clone(), ports.log.clone(), ledger.clone(), stop.subscribe());
            workers.push(("verification", tokio::spawn(verify)));
            Some(emr_http::AuditState { ledger, dir: settings.audit_dir() })
        }
        false => None,
    };
    let mut grpc = None;
    let app = match identity.filter(|_| roles.runs(Role::Api)) {
        Some(identity) => {
            let clinic = wiring::clinic_on(settings, ports.clone());
            let federated = Some(wiring::federated(settings, &ports).await?);
            if let Some(listen) = settings.grpc.listen {
                let state = emr_grpc::GrpcState { clinic: clinic.clone(), identity: identity.clone(), federated: federated.clone() };
                let routes = emr_grpc::routes(state);
                let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
                tracing::info!(%listen, "gRPC serving");
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                grpc = Some(tokio::spawn(
                    tonic::transport::Server::builder().add_routes(routes).serve_with_incoming_shutdown(incoming, shutdown()),
                ));
            }
            let attachments = Some(wiring::attachments(settings, clinic.clone())?);
            let diagnosis = match &attachments {
                Some(attachments) => {
                    let (state, worker) = wiring::diagnosis(settings, clinic.clone(), attachments.clone()).await?;
                    if roles.runs(Role::Diagnosis) {
                        let mut stopped = stop.subscribe();
                        let run = async move { worker.run(async move { drop(stopped.wait_for(|stop| *stop).await) }).await };
                        workers.push(("diagnosis worker", tokio::spawn(run)));
                    }
                    Some(state)
                }
                None => None,
            };
            let login_attempts_per_minute = settings.auth.login_attempts_per_minute;
            // Export jobs read the read models; a node without them runs none.
            let exports = match &read_models {
                Some(_) => Some(
                    emr_http::bulk::BulkExports::open(settings.exports_dir())
                        .context("the exports directory")?
                        .with_page_size(settings.export.page_size),
                ),
                None => None,
            };
            let state = emr_http::AppState {
                clinic,
                identity,
                login_attempts_per_minute,
                read_models,
                audit,
                attachments,
                federated,
                exports,
                diagnosis,
            };
            if let Some(exports) = &state.exports {
                // Jobs a previous process left running go on where their progress ends.
                exports.resume(&state).context("resuming bulk exports")?;
            }
            match settings.web_dir() {
                Some(dir) => {
                    tracing::info!(dir = %dir.display(), "serving the web application at /");
                    emr_http::router_with_web_app(state, dir)
                }
                None => {
                    tracing::info!("no built web application (npm --prefix web run build): serving the API only");
                    emr_http::router(state)
                }
            }
        }
        None => {
            let log = emr_eventstore::LogReader::new(ports.log.clone());
            emr_http::operations_router(emr_http::OperationsState { log, identity: None, read_models })
        }
    };
    if roles.runs(Role::Diagnosis) && !roles.runs(Role::Api) {
        // A worker-only process (JetStream deployments): the API processes queue, this one runs.
        let clinic = wiring::clinic_on(settings, ports.clone());
        let attachments = wiring::attachments(settings, clinic.clone())?;
        let (_, worker) = wiring::diagnosis(settings, clinic, attachments).await?;
        let mut stopped = stop.subscribe();
        let run = async move { worker.run(async move { drop(stopped.wait_for(|stop| *stop).await) }).await };
        workers.push(("diagnosis worker", tokio::spawn(run)));
    }
    let listener =
        tokio::net::TcpListener::bind(settings.http.listen).await.with_context(|| format!("binding {}", settings.http.listen))?;
    tracing::info!(listen = %settings.http.listen, "EMR Ledger serving");
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown())
        .await
        .context("HTTP server")?;
    tracing::info!("HTTP drained; stopping the workers");
    let _ = stop.send(true);
    if let Some(grpc) = grpc {
        grpc.await.context("gRPC server")?.context("gRPC server")?;
    }
    for (name, worker) in workers {
        worker.await.with_context(|| format!("{name} stopped abnormally"))?;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
