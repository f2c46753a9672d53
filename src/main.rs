//! The `regate` command line: a thin layer over the library.
//! Config problems print one line each (naming the key) and exit 78
//! (EX_CONFIG) before any port is bound.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

// mimalloc: per-thread free lists suit a request path that allocates and
// frees many small buffers on the thread that serves the connection.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for an invalid configuration (sysexits' EX_CONFIG). The
/// systemd unit lists it in `RestartPreventExitStatus`.
const EX_CONFIG: u8 = 78;
/// Exit code for a command line that names something that does not exist
/// (sysexits' EX_USAGE), e.g. `explain --user` with an unknown user.
const EX_USAGE: u8 = 64;

/// `--version`: the crate version and the git revision it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("REGATE_REVISION"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "regate",
    version = VERSION,
    about = "Authenticating TLS gateway for the Redis Enterprise REST API",
    long_about = "Authenticating TLS gateway for the Redis Enterprise Software REST API: \
        TLS termination, authentication, role-based policy, rate limits and a \
        hash-chained audit trail in front of the cluster's nodes."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The config file, as `--config FILE` (every subcommand that reads one).
#[derive(clap::Args)]
struct ConfigArg {
    /// Path to the TOML config file; relative paths inside it resolve
    /// against its directory.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a config file (SIGHUP reloads, SIGTERM/SIGINT/SIGQUIT drain
    /// and stop, SIGUSR1 reopens the audit file).
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Start a simulated 3-node cluster and the gateway in front of it.
    Demo {
        /// Address the demo gateway listens on.
        #[arg(long, default_value = "127.0.0.1:9443", value_name = "ADDR")]
        listen: String,
    },
    /// Validate a config file fully (certificates, keys, paths, roles);
    /// print every problem and warning; exit 0, or 78 when invalid.
    CheckConfig {
        /// Path to the config file (or use --config).
        #[arg(value_name = "FILE", required_unless_present = "config")]
        file: Option<PathBuf>,
        /// Path to the config file.
        #[arg(long, short, value_name = "FILE", conflicts_with = "file")]
        config: Option<PathBuf>,
    },
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
        #[command(flatten)]
        config: ConfigArg,
        /// A user of the users file (file source).
        #[arg(long)]
        user: String,
        /// The role to assume instead of looking the user up (cluster source).
        #[arg(long)]
        role: Option<String>,
        /// HTTP method, e.g. GET.
        method: String,
        /// Request path, e.g. /v1/bdbs/1.
        path: String,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Probe a running gateway: GET /readyz on its metrics port; exit 0
    /// when ready, 1 otherwise (container HEALTHCHECK; needs no shell).
    Healthcheck {
        /// Read the metrics address from this config's `[metrics] listen`.
        #[arg(long, short, value_name = "FILE", conflicts_with = "addr")]
        config: Option<PathBuf>,
        /// Metrics address to probe (default 127.0.0.1:9464); 0.0.0.0 and
        /// [::] are probed on loopback.
        #[arg(long, value_name = "ADDR")]
        addr: Option<String>,
        /// Deadline for the connection and the answer, in seconds.
        #[arg(long, default_value_t = 3, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) generated from this command line.
    Man,
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
        /// Audit files, oldest first (audit.jsonl.2 audit.jsonl.1 audit.jsonl).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write a new checkpoint signing key pair into DIR:
    /// audit-signing.key (mode 0600, for `[audit] signing_key`) and
    /// audit-signing.pub.pem (for the auditor's `verify --key`).
    Keygen {
        /// The directory the key pair is written to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` logs as its config's [log] says; the other commands as text
    let log = match &cli.command {
        Command::Run { config } => regate::ops::logging::settings_of(&config.config),
        _ => regate::ops::logging::LogSettings::default(),
    };
    regate::ops::logging::init(&log);
    match cli.command {
        Command::CheckConfig { file, config } => {
            let Some(file) = config.or(file) else {
                return ExitCode::from(EX_CONFIG);
            };
            match regate::config::load(&file) {
                Ok(cfg) => {
                    // risky but valid: said, not refused
                    for w in regate::ops::startup::warnings(&cfg) {
                        eprintln!("{}: warning: {w}", file.display());
                    }
                    for w in cfg.auth.iter().flat_map(|a| a.warnings()) {
                        eprintln!("{}: warning: {w}", file.display());
                    }
                    println!("{}: OK", file.display());
                    ExitCode::SUCCESS
                }
                Err(errs) => config_failure(&file, &errs),
            }
        }
        Command::Run {
            config: ConfigArg { config },
        } => {
            let cfg = match regate::config::load(&config) {
                Ok(c) => c,
                Err(errs) => return config_failure(&config, &errs),
            };
            // the TLS socket systemd holds across restarts (regate.socket)
            let inherited = match regate::ops::activation::take_listener() {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("regate: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // One current-thread runtime per core, each with its own
            // listener: see `regate::start_workers`.
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            run_runtime(Flavor::CurrentThread, async move {
                let running = regate::start_with(cfg, workers, inherited).await?;
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
            config: ConfigArg { config },
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
        Command::Healthcheck {
            config,
            addr,
            timeout,
        } => healthcheck(config.as_deref(), addr, timeout),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "regate", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("regate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn healthcheck(config: Option<&Path>, addr: Option<String>, timeout: u64) -> ExitCode {
    use regate::ops::healthcheck;
    let addr = match (config, addr) {
        (_, Some(a)) => a,
        (Some(c), None) => match healthcheck::metrics_listen_of(c) {
            Ok(a) => a.to_string(),
            Err(e) => {
                eprintln!("regate: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        },
        (None, None) => "127.0.0.1:9464".to_string(),
    };
    match healthcheck::check(&addr, std::time::Duration::from_secs(timeout.max(1))) {
        Ok(()) => {
            println!("ready");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("regate: not ready: {e}");
            ExitCode::from(1)
        }
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
                            return ExitCode::from(EX_USAGE);
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
                    return ExitCode::from(EX_USAGE);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand and every option says what it is for (`--help`,
    /// the man page and the completions come from these texts).
    #[test]
    fn every_subcommand_and_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "regate", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
        Cli::command().debug_assert();
    }
}
