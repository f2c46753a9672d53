//! The `regate` command line: a thin layer over the library.
//! Config problems print one line each (naming the key) and exit 64
//! before any port is bound.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc: per-thread free lists suit a request path that allocates and
// frees many small buffers on the thread that serves the connection.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a configuration error (EX_USAGE... EX_DATAERR family: 64).
const EX_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "regate",
    version,
    about = "Authenticating TLS gateway for the Redis Enterprise REST API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a config file.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a simulated 3-node cluster and the gateway in front of it.
    Demo {
        /// Address the demo gateway listens on.
        #[arg(long, default_value = "127.0.0.1:9443")]
        listen: String,
    },
    /// Validate a config file fully (certificates included); exit 0 or 64.
    CheckConfig { file: PathBuf },
    /// Read a password (tty without echo, or one line of stdin) and print
    /// an argon2id hash for the users file.
    HashPassword {
        /// A bcrypt (`$2b$`) hash instead of argon2id.
        #[arg(long)]
        bcrypt: bool,
        /// bcrypt cost (default 12; below 10 is weak).
        #[arg(long, requires = "bcrypt")]
        cost: Option<u32>,
        /// Print a ready-to-paste `[[users]]` block for this user name.
        #[arg(long, requires = "role")]
        user: Option<String>,
        /// The role of that block.
        #[arg(long, requires = "user")]
        role: Option<String>,
    },
    /// Print the policy decision for a user, a method and a path.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        /// A user of the users file (file source).
        #[arg(long)]
        user: String,
        /// The role to assume instead of looking the user up (cluster source).
        #[arg(long)]
        role: Option<String>,
        method: String,
        path: String,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of audit files (rotated ones included):
    /// reports the first edited, deleted or reordered record, and with
    /// --key every checkpoint's signature. Exit 0 intact, 1 tampered,
    /// 2 unreadable input or usage error.
    Verify {
        /// The Ed25519 public key (PEM) from `regate audit keygen`; repeat
        /// it for a trail that spans a key rotation.
        #[arg(long)]
        key: Vec<PathBuf>,
        /// The checkpoints copied to `checkpoint_sink` (a file, or the
        /// service log saved with `journalctl -o cat`): finds a cut tail.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// The forward-secure seed `audit keygen` printed (64 hex digits):
        /// checks every checkpoint's forward-secure MAC.
        #[arg(long)]
        seed: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write a new checkpoint signing key pair into DIR:
    /// audit-signing.key (mode 0600, for `[audit] signing_key`) and
    /// audit-signing.pub.pem (for the auditor's `verify --key`).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::CheckConfig { file } => match regate::config::load(&file) {
            Ok(cfg) => {
                for w in cfg.auth.iter().flat_map(|a| a.warnings()) {
                    eprintln!("{}: warning: {w}", file.display());
                }
                println!("{}: OK", file.display());
                ExitCode::SUCCESS
            }
            Err(errs) => config_failure(&file, &errs),
        },
        Command::Run { config } => {
            let cfg = match regate::config::load(&config) {
                Ok(c) => c,
                Err(errs) => return config_failure(&config, &errs),
            };
            // One current-thread runtime per core, each with its own
            // listener: see `regate::start_workers`.
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            run_runtime(Flavor::CurrentThread, async move {
                let running = regate::start_workers(cfg, workers).await?;
                regate::serve_until_signal(running).await
            })
        }
        // current-thread, as `run` serves: see crate::linger on h2 early answers
        Command::Demo { listen } => run_runtime(Flavor::CurrentThread, regate::demo::run(listen)),
        Command::HashPassword {
            bcrypt,
            cost,
            user,
            role,
        } => hash_password(bcrypt.then_some(cost), user.zip(role)),
        Command::Explain {
            config,
            user,
            role,
            method,
            path,
        } => explain(&config, &user, role.as_deref(), &method, &path),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    key,
                    checkpoints,
                    seed,
                    files,
                },
        } => audit_verify(&key, checkpoints, seed.as_deref(), &files),
        Command::Audit {
            command: AuditCommand::Keygen { out },
        } => match regate::audit::seal::keygen(&out) {
            Ok(k) => {
                println!(
                    "key id {}\nprivate key (keep on the gateway, mode 0600): {}\npublic key (for `regate audit verify --key`): {}\nforward-secure state (for `[audit] forward_secure = true`): {}\nforward-secure seed (for `regate audit verify --seed`; keep it offline, it is not shown again):\n{}",
                    k.id,
                    k.private.display(),
                    k.public.display(),
                    k.forward.display(),
                    k.seed
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("regate: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Exit 0 intact, 1 tampered, 2 unreadable input.
fn audit_verify(
    key: &[PathBuf],
    checkpoints: Option<PathBuf>,
    seed: Option<&str>,
    files: &[PathBuf],
) -> ExitCode {
    let seed = match seed.map(regate::audit::forward::parse_seed) {
        Some(None) => {
            eprintln!("regate: --seed must be the 64 hex digits `regate audit keygen` printed");
            return ExitCode::from(2);
        }
        Some(Some(s)) => Some(s),
        None => None,
    };
    let keys = match key
        .iter()
        .map(|k| regate::audit::seal::VerifyKey::load(k))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(k) => k,
        Err(e) => {
            eprintln!("regate: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = regate::audit::VerifyOptions {
        keys,
        checkpoints,
        seed,
    };
    match regate::audit::verify_with(files, &opts) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e @ regate::audit::VerifyError::Io { .. }) => {
            eprintln!("regate: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            println!("TAMPERED: {e}");
            ExitCode::from(1)
        }
    }
}

/// `bcrypt`: `Some(cost)` for bcrypt; `entry`: (user, role) for a block.
fn hash_password(bcrypt: Option<Option<u32>>, entry: Option<(String, String)>) -> ExitCode {
    use regate::auth::password as pw;
    let hashed = pw::read_password().and_then(|p| match bcrypt {
        Some(cost) => pw::hash_password_bcrypt(&p, cost.unwrap_or(pw::DEFAULT_BCRYPT_COST)),
        None => pw::hash_password(&p),
    });
    match hashed {
        Ok(h) => {
            if let Some(w) = regate::auth::password::StoredHash::parse(&h)
                .ok()
                .and_then(|s| s.weakness())
            {
                eprintln!("regate: warning: {w}");
            }
            match entry {
                None => println!("{h}"),
                Some((user, role)) => {
                    match regate::auth::users_file::user_block(&user, &h, &role) {
                        Ok(block) => print!("{block}"),
                        Err(problem) => {
                            eprintln!("regate: --user: {problem}");
                            return ExitCode::from(EX_CONFIG);
                        }
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("regate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn explain(config: &Path, user: &str, role: Option<&str>, method: &str, path: &str) -> ExitCode {
    let mut cfg = match regate::config::load(config) {
        Ok(c) => c,
        Err(errs) => return config_failure(config, &errs),
    };
    let (role, uid) = match role {
        Some(r) => (std::sync::Arc::<str>::from(r), None),
        None => {
            let found = cfg
                .auth
                .take()
                .and_then(|a| regate::auth::Authenticator::new(a, None).ok())
                .and_then(|a| a.role_of(user));
            match found {
                Some(r) => r,
                None => {
                    eprintln!("regate: user `{user}` is not in the users file (use --role for the cluster source)");
                    return ExitCode::from(EX_CONFIG);
                }
            }
        }
    };
    println!("{}", cfg.policy.explain(&role, uid, user, method, path));
    ExitCode::SUCCESS
}

fn config_failure(file: &std::path::Path, errs: &[regate::config::ConfigError]) -> ExitCode {
    for e in errs {
        eprintln!("{}: {e}", file.display());
    }
    ExitCode::from(EX_CONFIG)
}

/// Every serving runtime is current-thread (see `regate::start_workers`;
/// on h2, an early answer's HEADERS and DATA then leave together).
enum Flavor {
    CurrentThread,
}

fn run_runtime(
    flavor: Flavor,
    fut: impl std::future::Future<Output = std::io::Result<()>>,
) -> ExitCode {
    let mut builder = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("regate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Default log filter. rustls warns once per handshake from a client
/// that sends an IP address as SNI (OpenSSL-based clients such as curl
/// and wrk do): a log line per connection that any client can trigger.
const DEFAULT_LOG: &str = "info,rustls::msgs::handshake=error";

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
