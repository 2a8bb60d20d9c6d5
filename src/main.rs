//! The `s3seal` command line. `anyhow` lives only here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use s3seal::config::{Config, ProcessEnv};

#[derive(Parser)]
#[command(
    name = "s3seal",
    version,
    about = "A transparent, TLS-terminating S3 proxy that authenticates clients and re-signs for the upstream.",
    long_about = "A transparent, TLS-terminating S3 proxy.\n\n\
        With no arguments, s3seal serves https://127.0.0.1:8443 in front of an embedded demo \
        store (data under ./s3seal-data) and prints the settings to paste into a shell."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve requests (the default). Without --config, runs the embedded demo setup.
    Serve(ServeArgs),
    /// Validate a config file and exit (0 when valid, 64 when not).
    Check {
        #[arg(long, short)]
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
        /// For a multipart object: its seal, `.s3seal/seal/<salt>` from the same bucket.
        #[arg(long)]
        seal: Option<PathBuf>,
    },
    /// Write a development CA and a localhost server certificate signed by it.
    Certs {
        /// Folder to write ca.pem, ca-key.pem, server.pem and server-key.pem into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The config file (TOML). See docs/config.md.
    #[arg(long, short, env = "S3SEAL_CONFIG")]
    config: Option<PathBuf>,
    /// Embedded demo only: where the demo store keeps its data.
    #[arg(long, default_value = "s3seal-data")]
    data_dir: PathBuf,
    /// Embedded demo only: the HTTPS address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
}

/// Exit code for an invalid configuration (`EX_USAGE` in `sysexits.h`), as linkerd does.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("S3SEAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Some(Command::Check { config }) => match Config::load(&config, &ProcessEnv) {
            Ok(_) => {
                println!("{}: valid", config.display());
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        Some(Command::Certs { out, force }) => certs(&out, force),
        Some(Command::Decrypt {
            input,
            out,
            metadata,
            keys,
            seal,
        }) => decrypt(&input, &out, &metadata, &keys, seal.as_deref()),
        Some(Command::Serve(args)) => serve(args),
        None => serve(ServeArgs::parse_defaults()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3seal: {e:#}");
            if e.downcast_ref::<s3seal::config::ConfigError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
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

fn decrypt(
    input: &Path,
    out: &Path,
    metadata: &Path,
    keys: &[String],
    seal: Option<&Path>,
) -> anyhow::Result<()> {
    use base64::Engine as _;
    use s3seal::crypto::format::{Kek, KeyId};
    use s3seal::crypto::offline;

    let mut wrapping_keys = Vec::new();
    for spec in keys {
        let (id, file) = spec
            .split_once('=')
            .with_context(|| format!("--key {spec}: expected ID=FILE"))?;
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        );
        let raw = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .with_context(|| format!("{file}: not base64"))?,
        );
        let key: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("{file}: a key is 32 bytes"))?;
        wrapping_keys.push(Kek::new(KeyId::new(id)?, &key));
    }
    let meta = std::fs::read_to_string(metadata)
        .with_context(|| format!("reading {}", metadata.display()))?;
    let meta = offline::parse_metadata(&meta)?;
    let seal = seal
        .map(std::fs::read)
        .transpose()
        .context("reading the seal")?;
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

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let config = match &args.config {
            Some(path) => Config::load(path, &ProcessEnv)?,
            None => demo::config(&args).await?,
        };
        s3seal::server::run_until(config, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(feature = "embedded")]
#[path = "main/demo.rs"]
mod demo;

#[cfg(not(feature = "embedded"))]
mod demo {
    pub async fn config(_: &super::ServeArgs) -> anyhow::Result<s3seal::config::Config> {
        anyhow::bail!("this build has no embedded demo store: pass --config FILE")
    }
}
