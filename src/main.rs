//! The `s3seal` command line. `anyhow` lives only here.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use s3seal::config::{Config, ProcessEnv};
use s3seal::logging::LogFormat;
use s3seal::server::FileWatch;

#[derive(Parser)]
#[command(
    name = "s3seal",
    version,
    about = "A transparent, TLS-terminating S3 proxy that authenticates clients and re-signs for the upstream.",
    long_about = "A transparent, TLS-terminating S3 proxy: S3 clients talk HTTPS to s3seal with \
        their own keys; s3seal checks every signature and re-signs each request for the \
        upstream S3 service with the upstream's credentials.\n\n\
        Try it: `s3seal` with no arguments serves https://127.0.0.1:8443 in front of an \
        embedded demo store (data under ./s3seal-data) and prints the settings to paste into \
        a shell.\n\n\
        Run it: write a config (docs/config.md), check it with `s3seal check --config FILE`, \
        then `s3seal serve --config FILE`.",
    after_help = "Environment:\n  \
        S3SEAL_CONFIG      config file for `serve` and `check` (instead of --config)\n  \
        S3SEAL_LOG         log filter, e.g. `info`, `debug`, `s3seal::access=info,warn` (RUST_LOG also works)\n  \
        S3SEAL_LOG_FORMAT  `text` or `json` (instead of --log-format)\n\n\
        Docs: docs/config.md, docs/deploy.md, docs/operations.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Log line format: `text` or `json` (one JSON object per line). Overrides the config's
    /// `[server] log_format`.
    #[arg(
        long,
        global = true,
        env = "S3SEAL_LOG_FORMAT",
        value_name = "text|json"
    )]
    log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve requests (the default). Without --config, runs the embedded demo setup.
    #[command(long_about = "Serve requests (the default).\n\n\
        With --config (or S3SEAL_CONFIG), serves the proxy that the file describes. Without \
        it, runs the embedded demo: a local S3 store behind the proxy on 127.0.0.1:8443.\n\n\
        Signals:\n  \
        SIGHUP   reload the config file, certificates and keys; in-flight requests finish \
        with the old config; an invalid file is refused (logged) and the old config keeps \
        serving. With [server] watch_interval_secs, changed files are reloaded the same \
        way without a signal\n  \
        SIGTERM  stop accepting, let in-flight requests finish (up to \
        [server] drain_timeout_secs), exit 0; Ctrl-C does the same")]
    Serve(ServeArgs),
    /// Validate a config file and exit (0 when valid, 64 when not).
    #[command(
        long_about = "Validate a config file and exit: 0 when valid, 64 when not, \
        with the offending key (and line) on stderr. Secrets given as { env = ... } or \
        { file = ... } are resolved, so run it where the proxy runs. Binds nothing."
    )]
    Check {
        /// The config file (TOML). See docs/config.md.
        #[arg(long, short, env = "S3SEAL_CONFIG")]
        config: PathBuf,
    },
    /// Decrypt an object downloaded directly from the backend, without a proxy (docs/format.md).
    Decrypt {
        /// The stored object (ciphertext), as downloaded from the backend.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the plaintext.
        #[arg(long)]
        out: PathBuf,
        /// The object's metadata: `aws s3api head-object` JSON, or `name: value` header lines.
        #[arg(long)]
        metadata: PathBuf,
        /// A key-encryption key as ID=FILE, FILE holding its 32 bytes in base64. Repeatable.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// The bucket the object was stored in: version 2 objects open only where they were
        /// written (docs/format.md §5.1).
        #[arg(long, requires = "object")]
        bucket: Option<String>,
        /// The object's key in that bucket.
        #[arg(long, requires = "bucket")]
        object: Option<String>,
        /// For a version 1 multipart object: a copy of its seal, the object
        /// `.s3seal/seal/<base64url(salt)>` of the same bucket, instead of fetching it with
        /// --config (version 2 objects carry their seal in their metadata).
        #[arg(long)]
        seal: Option<PathBuf>,
        /// For a version 1 multipart object without --seal: the config (TOML) whose upstream
        /// holds --bucket; its seal is fetched from there with the upstream's credentials.
        /// Not read for other objects.
        #[arg(long, short, env = "S3SEAL_CONFIG")]
        config: Option<PathBuf>,
        /// The upstream holding --bucket (needed when the config has several).
        #[arg(long, requires = "config")]
        upstream: Option<String>,
    },
    /// Rewrite a bucket's objects that still use one of its rule's old SSE-C keys under the
    /// current key (see docs/policy.md, "Key rotation").
    Reencrypt(BulkArgs),
    /// Rewrap the data keys of a bucket's client-side encrypted objects under its current key
    /// (local or KMS), without copying their data (see docs/format.md §5.4).
    Rewrap(BulkArgs),
    /// Encrypt a client-side encrypted bucket's plaintext objects (stored before its rule was
    /// on) in place under its rule, checking each result (see docs/config.md, "Encrypting
    /// existing objects").
    Encrypt(BulkArgs),
    /// Convert a client-side encrypted bucket's objects, in place, between s3seal's format and
    /// the AWS S3 Encryption Client's format 3, checking each result (see docs/config.md,
    /// "Converting to and from the S3 Encryption Client's format").
    Convert(ConvertArgs),
    /// Print a new random key-encryption key (32 bytes, base64) for a client-side encryption
    /// rule's `key`.
    #[command(
        long_about = "Print a new random key-encryption key: 32 bytes from the system's \
        random generator, in base64, the form `key = { file = ... }` and `decrypt --key` read. \
        Store it as a secret and back it up: objects written under it cannot be read without it."
    )]
    Keygen,
    /// Write a development CA and a localhost server certificate signed by it.
    #[command(
        long_about = "Write a development CA and a server certificate for localhost, \
        127.0.0.1, ::1 and *.s3.localhost, signed by it. The CA is name-constrained to \
        localhost and loopback, so trusting it cannot vouch for any real host. For \
        production, use a certificate from your own CA."
    )]
    Certs {
        /// Folder to write ca.pem, ca-key.pem, server.pem and server-key.pem into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// The arguments of `convert`: a bulk command's, and the target format.
#[derive(clap::Args)]
struct ConvertArgs {
    /// The format to convert objects to; objects already in it are left alone.
    #[arg(long, value_enum)]
    to: ConvertTo,
    #[command(flatten)]
    bulk: BulkArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConvertTo {
    /// The AWS S3 Encryption Client's format 3 (single PutObject, record in the metadata).
    S3ec,
    /// s3seal's own format (version 2).
    S3seal,
}

/// The arguments of the bulk commands (`reencrypt`, `rewrap`, `encrypt`, `convert`).
#[derive(clap::Args)]
struct BulkArgs {
    /// The config file (TOML) whose rules and upstreams the command uses.
    #[arg(long, short, env = "S3SEAL_CONFIG")]
    config: PathBuf,
    /// The bucket to work through (as the backend names it).
    #[arg(long)]
    bucket: String,
    /// Only keys that start with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only keys after this one: resumes a run that stopped (its progress line names the key).
    #[arg(long)]
    start_after: Option<String>,
    /// The upstream holding the bucket (needed when the config has several).
    #[arg(long)]
    upstream: Option<String>,
    /// Objects worked on at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// List what would change; write nothing (for rewrap, the old keys are still unwrapped,
    /// so a KMS is still called).
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

impl BulkArgs {
    fn options(&self) -> s3seal::bulk::Options {
        s3seal::bulk::Options {
            prefix: self.prefix.clone(),
            start_after: self.start_after.clone(),
            concurrency: usize::from(self.concurrency),
            dry_run: self.dry_run,
            progress: s3seal::bulk::Progress::for_stderr(
                std::io::stderr().is_terminal(),
                std::env::var("COLUMNS").ok().as_deref(),
            ),
        }
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The config file (TOML). See docs/config.md.
    #[arg(long, short, env = "S3SEAL_CONFIG")]
    config: Option<PathBuf>,
    /// Embedded demo only: where the demo store keeps its data.
    #[arg(long, default_value = "s3seal-data")]
    data_dir: PathBuf,
    /// Embedded demo only: the HTTPS address to listen on (port 0: one the OS chooses, shown
    /// in the banner).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
}

/// Exit code for an invalid configuration (`EX_USAGE` in `sysexits.h`), as linkerd does.
const EXIT_CONFIG: u8 = 64;

/// Set once `serve` has started its log subscriber: fatal errors are then logged through it,
/// in the format the operator chose. Holds the log writer until `main` takes it, so that the
/// last lines (the fatal error among them) are written out before the process exits.
static LOGGING: std::sync::OnceLock<std::sync::Mutex<Option<s3seal::logging::LogGuard>>> =
    std::sync::OnceLock::new();

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cli_format = cli.log_format;
    let result = match cli.command {
        Some(Command::Check { config }) => return check(&config),
        Some(Command::Certs { out, force }) => certs(&out, force),
        Some(Command::Keygen) => {
            println!("{}", *s3seal::crypto::format::Kek::generate_base64());
            Ok(())
        }
        Some(Command::Decrypt {
            input,
            out,
            metadata,
            keys,
            bucket,
            object,
            seal,
            config,
            upstream,
        }) => {
            let place = bucket.as_deref().zip(object.as_deref());
            let seal = match (seal, config) {
                (Some(file), _) => Seal::File(file),
                (None, Some(config)) => Seal::Fetch { config, upstream },
                (None, None) => Seal::None,
            };
            decrypt(&input, &out, &metadata, &keys, place, seal)
        }
        Some(Command::Reencrypt(args)) => reencrypt(&args),
        Some(Command::Rewrap(args)) => rewrap(&args),
        Some(Command::Encrypt(args)) => encrypt(&args),
        Some(Command::Convert(args)) => convert(&args),
        Some(Command::Serve(args)) => serve(args, cli.log_format),
        None => serve(ServeArgs::parse_defaults(), cli.log_format),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if config_caused(&e) { EXIT_CONFIG } else { 1 };
            fatal(&report(&e), code, cli_format);
            ExitCode::from(code)
        }
    };
    if let Some(guard) = LOGGING.get() {
        drop(guard.lock().map(|mut g| g.take()));
    }
    code
}

/// Reports the error that ends the process: through the log subscriber when it runs (so a
/// JSON log stays JSON), else on stderr, as one JSON object when `--log-format json` (or
/// `S3SEAL_LOG_FORMAT=json`) asked for JSON.
fn fatal(message: &str, exit_code: u8, format: Option<LogFormat>) {
    if LOGGING.get().is_some() {
        tracing::error!(exit_code, "s3seal: {message}");
    } else if format == Some(LogFormat::Json) {
        let line = serde_json::json!({
            "timestamp": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "level": "ERROR",
            "message": format!("s3seal: {message}"),
            "exit_code": exit_code,
            "target": "s3seal",
        });
        eprintln!("{line}");
    } else {
        eprintln!("s3seal: {message}");
    }
}

/// `s3seal check`: the config loaded, then everything `serve` checks before it binds (see
/// `server::check`); exit 0 with what each client key may do, or 64 with the reason.
fn check(path: &Path) -> ExitCode {
    let loaded = match Config::load(path, &ProcessEnv) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{}: {}", path.display(), report(&e.into()));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let clients: Vec<String> = loaded
        .clients
        .iter()
        .map(|id| {
            let classes: Vec<&str> = id
                .operations
                .iter()
                .map(s3seal::s3::operation::Access::as_str)
                .collect();
            format!(
                "client {} (upstream {}): buckets {}; operations {}",
                id.access_key_id,
                id.upstream,
                id.buckets.patterns().join(", "),
                classes.join(", "),
            )
        })
        .collect();
    if let Err(e) = s3seal::server::check(loaded) {
        eprintln!("{}: {}", path.display(), report(&e.into()));
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{}: valid", path.display());
    for line in clients {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

/// Whether a failure is the config's (exit 64, so that a supervisor does not restart a
/// process that cannot start): the file itself, or TLS material it names.
fn config_caused(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<s3seal::config::ConfigError>()
            || cause.is::<s3seal::tls::TlsError>()
            || matches!(
                cause.downcast_ref::<s3seal::server::StartError>(),
                Some(s3seal::server::StartError::Tls(_))
            )
    })
}

/// An error and its causes on one line, each cause once: many errors already name their
/// cause in their own message (`cannot read x: No such file`), and printing the chain
/// after them would repeat it.
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

impl ServeArgs {
    fn parse_defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Only::parse_from(["s3seal"]).serve
    }
}

fn certs(out: &Path, force: bool) -> anyhow::Result<()> {
    let g = s3seal::certs::generate(out, force).context("generating certificates")?;
    for path in [&g.ca, &g.ca_key, &g.server, &g.server_key] {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Where `decrypt` finds a version 1 multipart object's seal.
enum Seal {
    /// A copy, in this file (`--seal`).
    File(PathBuf),
    /// In the object's bucket, through the upstream of this config (`--config`).
    Fetch {
        config: PathBuf,
        upstream: Option<String>,
    },
    /// Nowhere: decrypting such an object fails, naming the seal's object.
    None,
}

fn decrypt(
    input: &Path,
    out: &Path,
    metadata: &Path,
    keys: &[String],
    place: Option<(&str, &str)>,
    seal: Seal,
) -> anyhow::Result<()> {
    use s3seal::crypto::format::{Kek, KeyId, Place};
    use s3seal::crypto::offline;

    let mut wrapping_keys = Vec::new();
    for spec in keys {
        let (id, file) = spec
            .split_once('=')
            .with_context(|| format!("--key {spec}: expected ID=FILE"))?;
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        );
        let kek = Kek::from_base64(KeyId::new(id)?, &text)
            .with_context(|| format!("the key in {file}"))?;
        wrapping_keys.push(kek);
    }
    let meta = std::fs::read_to_string(metadata)
        .with_context(|| format!("reading {}", metadata.display()))?;
    let meta = offline::parse_metadata(&meta)?;
    let seal = match seal {
        Seal::File(file) => Some(
            std::fs::read(&file).with_context(|| format!("reading the seal {}", file.display()))?,
        ),
        Seal::Fetch { config, upstream } => match (offline::v1_seal_name(&meta)?, place) {
            (Some(name), Some((bucket, _))) => {
                let config = Config::load(&config, &ProcessEnv)?;
                let seal = block_on(s3seal::recover::v1_seal(
                    config,
                    upstream.as_deref(),
                    bucket,
                    &name,
                ))??;
                eprintln!("fetched the seal {name} from bucket {bucket}");
                Some(seal)
            }
            // No seal needed; or no bucket to fetch it from, which decrypting reports.
            _ => None,
        },
        Seal::None => None,
    };
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let stored = file.metadata()?.len();
    let partial = out.with_extension("s3seal-partial");
    let sink = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?,
    );
    let result = offline::decrypt_object(
        &meta,
        &wrapping_keys,
        place.map(|(bucket, key)| Place { bucket, key }),
        seal.as_deref(),
        stored,
        std::io::BufReader::new(file),
        sink,
    );
    match result {
        Ok(len) => {
            // Only a fully authenticated plaintext gets the requested name.
            std::fs::rename(&partial, out)?;
            println!("{}: {len} bytes", out.display());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e).context("decrypting")
        }
    }
}

/// Runs one of the one-shot commands that talk to an upstream.
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    s3seal::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(f))
}

fn reencrypt(args: &BulkArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config, &ProcessEnv)?;
    let report = block_on(s3seal::reencrypt::run(
        config,
        &args.bucket,
        args.upstream.as_deref(),
        &args.options(),
    ))??;
    let counts = [
        ("current", report.current.len()),
        ("reencrypted", report.reencrypted.len()),
    ];
    summarize(
        args,
        "reencrypt",
        (&report.reencrypted, ["old_key", "key"]),
        &counts,
        &report.failed,
    )
}

fn rewrap(args: &BulkArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config, &ProcessEnv)?;
    let report = block_on(s3seal::rewrap::run(
        config,
        &args.bucket,
        args.upstream.as_deref(),
        &args.options(),
    ))??;
    let counts = [
        ("current", report.current.len()),
        ("unencrypted", report.unencrypted.len()),
        ("rewrapped", report.rewrapped.len()),
    ];
    summarize(
        args,
        "rewrap",
        (&report.rewrapped, ["old_key", "key"]),
        &counts,
        &report.failed,
    )
}

fn encrypt(args: &BulkArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config, &ProcessEnv)?;
    let report = block_on(s3seal::encrypt::run(
        config,
        &args.bucket,
        args.upstream.as_deref(),
        &args.options(),
    ))??;
    let counts = [
        ("already_encrypted", report.already.len()),
        ("encrypted", report.encrypted.len()),
    ];
    let changed: Vec<(String, String)> = report
        .encrypted
        .iter()
        .map(|(key, size)| (key.clone(), size.to_string()))
        .collect();
    summarize(
        args,
        "encrypt",
        (&changed, ["size", "bytes:"]),
        &counts,
        &report.failed,
    )
}

fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    let bulk = &args.bulk;
    let config = Config::load(&bulk.config, &ProcessEnv)?;
    let to = match args.to {
        ConvertTo::S3ec => s3seal::convert::Format::S3ec,
        ConvertTo::S3seal => s3seal::convert::Format::S3seal,
    };
    let report = block_on(s3seal::convert::run(
        config,
        &bulk.bucket,
        bulk.upstream.as_deref(),
        to,
        &bulk.options(),
    ))??;
    let counts = [
        ("already_converted", report.already.len()),
        ("unencrypted", report.unencrypted.len()),
        ("instruction_files", report.instruction_files.len()),
        ("converted", report.converted.len()),
    ];
    let changed: Vec<(String, String)> = report
        .converted
        .iter()
        .map(|(key, size)| (key.clone(), size.to_string()))
        .collect();
    summarize(
        bulk,
        &format!("convert to {}", to.name()),
        (&changed, ["size", "bytes:"]),
        &counts,
        &report.failed,
    )
}

/// The end of a bulk command: in a dry run, each object that would change, with a detail
/// (`field` in JSON, `word` in text: its old key, or its size); every failure with its reason;
/// the counts; as text, or as one JSON object with `--json`. Fails (exit 1) when any object
/// failed.
fn summarize(
    args: &BulkArgs,
    command: &str,
    (changed, [field, word]): (&[(String, String)], [&str; 2]),
    counts: &[(&str, usize)],
    failed: &[(String, String)],
) -> anyhow::Result<()> {
    if args.json {
        let mut summary = serde_json::json!({
            "command": command,
            "bucket": args.bucket,
            "dry_run": args.dry_run,
            "failed": failed.iter().map(|(k, why)| serde_json::json!({"key": k, "reason": why})).collect::<Vec<_>>(),
        });
        for (name, n) in counts {
            summary[*name] = serde_json::json!(n);
        }
        if args.dry_run {
            summary["would_change"] = changed
                .iter()
                .map(|(k, detail)| serde_json::json!({"key": k, (field): detail}))
                .collect();
        }
        println!("{summary}");
    } else {
        if args.dry_run {
            for (key, detail) in changed {
                println!("would change {key} ({word} {detail})");
            }
        }
        for (key, why) in failed {
            println!("failed {key}: {why}");
        }
        let counts: Vec<String> = counts
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        println!("{}, {} failed", counts.join(", "), failed.len());
    }
    anyhow::ensure!(
        failed.is_empty(),
        "{} objects failed: {}",
        failed.len(),
        failed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The log filter: `S3SEAL_LOG`, else the conventional `RUST_LOG`.
fn log_filter() -> Option<String> {
    std::env::var("S3SEAL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
}

fn serve(args: ServeArgs, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    // Loaded before logging starts, because the config names the log format; a config error
    // is printed by `main` on its own line.
    let config = match &args.config {
        Some(path) => Some(Config::load(path, &ProcessEnv)?),
        None => None,
    };
    let format = log_format
        .or(config.as_ref().map(|c| c.server.log_format))
        .unwrap_or_default();
    let guard = s3seal::logging::init(format, log_filter().as_deref());
    let _ = LOGGING.set(std::sync::Mutex::new(Some(guard)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let (config, banner) = if let Some(config) = config {
            (config, None)
        } else {
            let (config, banner) = demo::config(&args).await?;
            (config, Some(banner))
        };
        // Installed before the listeners open, so that a SIGTERM or SIGHUP that arrives as
        // soon as the port answers is handled rather than killing the process.
        let mut signals = Signals::install().context("installing signal handlers")?;
        let running = s3seal::server::start(config).await?;
        if let Some(banner) = &banner {
            demo::print_banner(banner, running.addr);
        }
        let mut watch = args
            .config
            .as_deref()
            .and_then(|path| FileWatch::new(path, &running));
        if let Some(w) = &watch {
            tracing::info!(
                every_secs = w.period().as_secs(),
                "watching the config and TLS files for changes"
            );
        }
        loop {
            let reason = tokio::select! {
                signal = signals.next() => match signal {
                    Signal::Stop => break,
                    Signal::Reload => "SIGHUP",
                },
                () = files_changed(watch.as_mut(), &running) => "files changed",
            };
            match &args.config {
                // The outcome is logged and counted by `reload_file`.
                Some(path) => {
                    tracing::info!(reason, "reloading the config");
                    let _ = running.reload_file(path, &ProcessEnv).await;
                }
                None => {
                    tracing::warn!("SIGHUP ignored: the demo setup has no config file to reload");
                }
            }
        }
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Completes when the watched files change; never without a watch.
async fn files_changed(watch: Option<&mut FileWatch>, running: &s3seal::server::Running) {
    match watch {
        Some(w) => w.changed(running).await,
        None => std::future::pending().await,
    }
}

enum Signal {
    /// SIGHUP: reload the config.
    Reload,
    /// SIGTERM or Ctrl-C: drain and exit.
    Stop,
}

/// Streams rather than one-shot futures, so that a signal arriving while a reload runs is
/// still seen.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
                hangup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Signal::Stop,
                _ = self.term.recv() => Signal::Stop,
                _ = self.hangup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

#[cfg(feature = "embedded")]
#[path = "main/demo.rs"]
mod demo;

#[cfg(not(feature = "embedded"))]
mod demo {
    /// There is no demo, so there is never a banner.
    pub type Banner = std::convert::Infallible;

    pub async fn config(_: &super::ServeArgs) -> anyhow::Result<(s3seal::config::Config, Banner)> {
        anyhow::bail!("this build has no embedded demo store: pass --config FILE")
    }

    pub fn print_banner(banner: &Banner, _: std::net::SocketAddr) {
        match *banner {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every flag of every command says what it is for in `--help`.
    #[test]
    fn every_flag_has_help() {
        let cli = super::Cli::command();
        let mut missing = Vec::new();
        for cmd in std::iter::once(&cli).chain(cli.get_subcommands()) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{} --{}", cmd.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }
}
