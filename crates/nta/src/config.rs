//! Configuration of `nta`: a few top-level settings and one section per role, each defined
//! once, in its role crate, with the `settings!` macro (see the `settings` crate for the macro,
//! the naming rules and why this design).
//!
//! Precedence, the same for every setting: flags > environment (`NTA_*`) > TOML file
//! (`--config FILE` / `NTA_CONFIG`) > defaults, applied by [`load`]. [`with_flags`] generates
//! the flags from the same definitions (clap builder API), and `nta config --markdown` prints
//! the reference table the README embeds.

use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};
use settings::{Kind, Layers, Settings};
use std::net::SocketAddr;
use std::path::Path;

settings::settings! {
    /// Everything `nta` reads from its configuration.
    #[derive(Debug, Clone)]
    pub struct NtaConfig {
        /// NATS server URL, or several comma-separated (the servers of a cluster).
        pub nats_url: String = settings::DEFAULT_NATS_URL.into(),
        /// PostgreSQL URL; the database is created if missing.
        pub database_url: String = settings::DEFAULT_DATABASE_URL.into(),
        /// Address serving Prometheus metrics. Unset: 127.0.0.1 on the port of the role (see
        /// Metrics), or an ephemeral port, with a warning, if that one is taken; a configured
        /// address that is taken is an error.
        #[setting(default_doc = "127.0.0.1:9464 (all) / 9465-9470 per role")]
        pub metrics_addr: Option<SocketAddr> = None,
        /// Log filter (tracing EnvFilter syntax), e.g. `info` or `agent=debug,info`.
        pub log: String = "info,async_nats=warn".into(),
        /// Log lines as `text` (for people) or `json` (one object per line, for log shippers:
        /// timestamp, level, target, message and the event's fields as keys).
        pub log_format: LogFormat = LogFormat::Text,
    }
    sections {
        pub agent: agent::AgentConfig,
        pub ingestor: ingestor::IngestorConfig,
        pub windower: windower::service::WindowerServiceConfig,
        pub predictor: predictor::PredictorServiceConfig,
        pub dashboard: dashboard::DashboardConfig,
        pub notifier: notifier::NotifierConfig,
        pub rescore: rescore::RescoreConfig,
        pub stream: bus::StreamLimits,
        pub frames: bus::FrameLimits,
        pub alerts: bus::AlertLimits,
        pub nats: bus::NatsAuth,
    }
}

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, settings::serde::Serialize, settings::serde::Deserialize)]
#[serde(crate = "settings::serde", rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl settings::SettingType for LogFormat {
    const KIND: Kind = Kind::Str;
}

impl NtaConfig {
    /// The NATS server and credentials every role uses.
    pub fn nats(&self) -> bus::Nats {
        bus::Nats { url: self.nats_url.clone(), auth: self.nats.clone() }
    }

    /// Hands the top-level settings to the roles that use them (runtime fields of their
    /// configs, not settings of their own).
    pub fn share(&mut self) {
        let nats = &self.nats();
        let (db, stream) = (&self.database_url, &self.stream);
        self.agent.nats.clone_from(nats);
        self.agent.stream_limits.clone_from(stream);
        self.agent.frame_limits.clone_from(&self.frames);
        self.ingestor.nats.clone_from(nats);
        self.ingestor.database_url.clone_from(db);
        self.ingestor.stream_limits.clone_from(stream);
        self.windower.nats.clone_from(nats);
        self.windower.database_url.clone_from(db);
        self.windower.stream_limits.clone_from(stream);
        self.predictor.nats.clone_from(nats);
        self.predictor.database_url.clone_from(db);
        self.predictor.stream_limits.clone_from(stream);
        self.predictor.alert_limits = self.alerts;
        self.dashboard.nats.clone_from(nats);
        self.rescore.nats.clone_from(nats);
        self.rescore.database_url.clone_from(db);
        self.rescore.windower.clone_from(&self.windower.windower);
        self.rescore.windower_step = self.windower.max_messages_per_step;
        self.rescore.policy = self.predictor.policy();
        self.rescore.rules.clone_from(&self.predictor.rules);
        self.dashboard.database_url.clone_from(db);
        self.notifier.nats.clone_from(nats);
        self.notifier.stream_limits.clone_from(stream);
        self.notifier.alert_limits.clone_from(&self.alerts);
    }
}

/// Adds a flag for every setting but the secrets to `cmd` (skipping ids in `taken`), one help
/// heading per section. A flag's id is its TOML key, which is how [`load`] finds it.
pub fn with_flags(mut cmd: Command, taken: &[String]) -> Command {
    let defaults = NtaConfig::default().to_table();
    for s in NtaConfig::settings() {
        let Some(flag) = s.flag() else { continue };
        if taken.contains(&s.key) {
            continue;
        }
        let default = settings::documented_default(&s, &defaults).replace('`', "");
        let mut arg = Arg::new(s.key.clone()).long(flag).value_name(s.field.name.to_uppercase()).help(format!(
            "{} [env: {}] [default: {default}]",
            s.help(),
            s.env()
        ));
        if let Some(c) = s.field.short {
            arg = arg.short(c);
        }
        if s.field.list {
            arg = arg.action(clap::ArgAction::Append);
        }
        if s.field.kind == Kind::Bool {
            // `--promisc` or `--promisc=false` (to override a file or the environment).
            arg = arg.num_args(0..=1).require_equals(true).default_missing_value("true");
        }
        if !s.section.is_empty() {
            let mut heading = s.section.clone();
            heading[..1].make_ascii_uppercase();
            arg = arg.help_heading(heading);
        }
        cmd = cmd.arg(arg);
    }
    let secrets: Vec<String> =
        NtaConfig::settings().iter().filter(|s| s.field.secret).map(|s| format!("{} ({})", s.key, s.env())).collect();
    cmd.after_help(format!(
        "Secrets have no flag, as command lines show in `ps`: set them in the environment or the file: {}.",
        secrets.join(", ")
    ))
}

/// `taken` plus the keys of every setting but where NATS is and how to log in to it: what
/// [`with_flags`] should skip for a command that only talks to NATS.
pub fn all_but_nats(taken: &[String]) -> Vec<String> {
    let others =
        NtaConfig::settings().into_iter().map(|s| s.key).filter(|k| k != "nats_url" && !k.starts_with("nats."));
    taken.iter().cloned().chain(others).collect()
}

/// What [`with_flags`] should skip for `nta rescore`: all but NATS, PostgreSQL and the settings
/// of the windower engine, the predictor's alert decision and `[rescore]`; `--model` is the
/// run's own argument, not the predictor's setting.
pub fn rescore_skips(taken: &[String]) -> Vec<String> {
    let keep = |k: &str| {
        k == "nats_url"
            || k == "database_url"
            || k.starts_with("nats.")
            || k.starts_with("rescore.")
            || ["min_confidence", "sustain_confidence", "rule_confidence", "alert_quiet_s"]
                .iter()
                .any(|s| k == format!("predictor.{s}"))
            || windower::WindowerConfig::settings().iter().any(|s| format!("windower.{}", s.key) == k)
    };
    let others = NtaConfig::settings().into_iter().map(|s| s.key).filter(|k| !keep(k));
    taken.iter().cloned().chain(others).collect()
}

/// Defaults < the TOML `file` < environment < flags given in `matches` or its subcommands'
/// matches (any arg whose id is a setting's key, so a subcommand may declare its own).
pub fn load(file: Option<&Path>, matches: &ArgMatches) -> Result<NtaConfig> {
    load_with(file, matches, |name| std::env::var(name).ok())
}

fn load_with(file: Option<&Path>, matches: &ArgMatches, env: impl Fn(&str) -> Option<String>) -> Result<NtaConfig> {
    let mut layers = Layers::new::<NtaConfig>();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        layers.file(&text, &format!("config {}", path.display()))?;
    }
    layers.env(env)?;
    let mut level = Some(matches);
    while let Some(m) = level {
        for s in layers.settings().to_vec() {
            let Ok(Some(values)) = m.try_get_raw(&s.key) else { continue };
            if m.value_source(&s.key) != Some(ValueSource::CommandLine) {
                continue;
            }
            let flag = format!("--{}", s.flag().unwrap_or_default());
            // A list flag given several times is the comma-separated list of its values.
            let values: Option<Vec<&str>> = values.map(|v| v.to_str()).collect();
            let text = values.filter(|v| !v.is_empty()).with_context(|| format!("{flag}: not UTF-8"))?.join(",");
            layers.set(&s.key, &text, &flag)?;
        }
        level = m.subcommand().map(|(_, sub)| sub);
    }
    Ok(layers.build()?)
}

/// `nta config`: the effective configuration, or the reference table.
pub fn print(cfg: &NtaConfig, markdown: bool) {
    if markdown {
        print!("{}", settings::markdown::<NtaConfig>());
    } else {
        println!("# nta: effective configuration (defaults < --config file < NTA_* environment < flags)");
        print!("{}", shown(cfg));
    }
}

/// The effective configuration as TOML, secrets redacted: the secret settings and the
/// passwords inside the server URLs.
fn shown(cfg: &NtaConfig) -> String {
    let mut c = cfg.clone();
    c.nats_url = settings::redact_nats_url(&c.nats_url);
    c.database_url = settings::redact_url(&c.database_url);
    settings::show(&c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const BEGIN: &str = "<!-- settings-table:begin (generated by `nta config --markdown`) -->\n";
    const END: &str = "<!-- settings-table:end -->";

    fn matches(args: &[&str]) -> ArgMatches {
        crate::cli::command().try_get_matches_from(["nta"].iter().chain(args)).unwrap()
    }

    fn load_test(file: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Result<NtaConfig> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        if let Some(text) = file {
            f.write_all(text.as_bytes()).unwrap();
        }
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load_with(file.map(|_| f.path()), &matches(args), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_unchanged() {
        let c = load_test(None, &[], &["run", "-t", "ingestor"]).unwrap();
        assert_eq!(c.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(c.database_url, "postgres://postgres@127.0.0.1:5432/nta");
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.agent.batch_policy().max_records, 500);
        assert_eq!(c.agent.batch_policy().max_age.as_millis(), 1000);
        assert_eq!(c.agent.queue_max_bytes(), 128 << 20);
        assert_eq!((c.agent.snaplen, c.agent.promisc, c.agent.max_pending_acks), (65535, false, 64));
        assert_eq!(
            (c.ingestor.durable.as_str(), c.ingestor.batches_per_txn, c.ingestor.retention()),
            ("nta-ingestor", 16, None)
        );
        assert_eq!(c.windower.durable, "nta-windower");
        assert_eq!(c.windower.windower.allowed_lateness().as_millis(), 2000);
        assert_eq!(c.windower.windower.idle_agent_timeout().as_secs(), 30);
        assert_eq!((c.predictor.durable.as_str(), c.predictor.min_confidence), ("nta-predictor", 0.7));
        assert_eq!(c.predictor.quiet_period().as_secs(), 300);
        assert_eq!(c.dashboard.listen.to_string(), "127.0.0.1:8080");
        assert_eq!((c.stream.max_age().as_secs(), c.stream.max_bytes()), (7 * 24 * 3600, None));
    }

    #[test]
    fn flags_beat_environment_beat_file_beat_defaults() {
        let file = "nats_url = 'nats://file:1'\ndatabase_url = 'postgres://file/nta'\n\
                    [agent]\ninterface = 'eth0'\nbatch_size = 100\npromisc = true\n\
                    [ingestor]\nretention_days = 3\n[windower]\nallowed_lateness_ms = 500\n\
                    [stream]\nmax_gb = 2.5\n";
        let env = [
            ("NTA_NATS_URL", "nats://env:2"),
            ("NTA_RETENTION_DAYS", "7"),
            ("NTA_AGENT_BATCH_SIZE", "1"),
            ("NTA_DASHBOARD_PASSWORD", "pw"),
            ("NTA_WINDOWER_DISTINCT_CAP", "64"),
        ];
        let args = [
            "run",
            "-t",
            "all",
            "--batch-size",
            "200",
            "--promisc=false",
            "--retention-days",
            "0",
            "--ingestor-writers",
            "3",
            "--stream-max-age-hours",
            "1",
        ];
        let c = load_test(Some(file), &env, &args).unwrap();
        assert_eq!(c.nats_url, "nats://env:2", "environment over file");
        assert_eq!(c.database_url, "postgres://file/nta", "file over default");
        assert_eq!(c.agent.interface.as_deref(), Some("eth0"));
        assert_eq!(c.agent.batch_size, 200, "flag over file");
        assert!(!c.agent.promisc, "--promisc=false over the file");
        assert_eq!(c.ingestor.retention(), None, "flag 0 over env 7 over file 3");
        assert_eq!(c.ingestor.writers, 3);
        assert_eq!(c.windower.windower.allowed_lateness_ms, 500);
        assert_eq!(c.windower.windower.distinct_cap, 64);
        assert_eq!(c.stream.max_bytes(), Some(2_500_000_000));
        assert_eq!(c.stream.max_age_hours, 1);
        assert_eq!(c.dashboard.password.as_deref(), Some("pw"));
        // Only the flags the file or env did not set fall through.
        let c = load_test(Some(file), &[], &["run", "-t", "agent"]).unwrap();
        assert_eq!((c.agent.batch_size, c.ingestor.retention()), (100, Some(3)));
    }

    #[test]
    fn list_flags_repeat() {
        let args = ["run", "-t", "notifier", "--webhook", "http://a/x", "--webhook", "http://b/y,http://c/z"];
        let c = load_test(None, &[("NTA_WEBHOOK_URL", "http://env/")], &args).unwrap();
        assert_eq!(c.notifier.webhook.as_deref(), Some("http://a/x,http://b/y,http://c/z"));
        let c = load_test(None, &[], &["run", "-t", "notifier", "--mail-to", "a@x", "--mail-to", "b@y"]).unwrap();
        assert_eq!(c.notifier.mail_to.as_deref(), Some("a@x,b@y"));
        // Other flags keep taking one value.
        assert!(crate::cli::command()
            .try_get_matches_from(["nta", "run", "--snaplen", "1", "--snaplen", "2"])
            .is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = load_test(Some("[agent]\ninterfac = 'eth0'\n"), &[], &["run", "-t", "agent"]).unwrap_err().to_string();
        assert!(e.contains("unknown setting `agent.interfac` (did you mean `agent.interface`?)"), "{e}");
        let e = load_test(Some("[agent]\nsnaplen = 'big'\n"), &[], &["run", "-t", "agent"]).unwrap_err().to_string();
        assert!(e.contains("`agent.snaplen`: invalid type: string \"big\""), "{e}");
        let e = load_test(None, &[("NTA_RETENTION_DAYS", "-1")], &["run", "-t", "agent"]).unwrap_err().to_string();
        assert!(e.contains("environment variable NTA_RETENTION_DAYS: `ingestor.retention_days`"), "{e}");
        let e = load_test(None, &[], &["run", "-t", "agent", "--snaplen", "x"]).unwrap_err().to_string();
        assert_eq!(e, "--snaplen: `agent.snaplen` expects an integer, got \"x\"");
        let e = load_test(None, &[], &["run", "-t", "agent", "--listen", "nowhere"]).unwrap_err().to_string();
        assert!(e.starts_with("--listen: `dashboard.listen`: invalid"), "{e}");
    }

    #[test]
    fn documented_names_still_work() {
        let cmd = crate::cli::command();
        let run = cmd.find_subcommand("run").unwrap();
        let flags: Vec<_> = run.get_arguments().filter_map(|a| a.get_long()).collect();
        for f in [
            "nats-url",
            "database-url",
            "metrics-addr",
            "interface",
            "bpf",
            "snaplen",
            "promisc",
            "agent-id",
            "batch-size",
            "batch-timeout-ms",
            "queue-mb",
            "max-pending-acks",
            "ingestor-durable",
            "retention-days",
            "batches-per-txn",
            "windower-durable",
            "allowed-lateness-ms",
            "idle-agent-timeout-s",
            "model",
            "predictor-durable",
            "min-confidence",
            "alert-quiet-s",
            "listen",
            "stream-max-age-hours",
            "stream-max-gb",
            "read",
            "realtime",
            "target",
        ] {
            assert!(flags.contains(&f), "--{f} missing");
        }
        assert!(!flags.iter().any(|f| f.contains("password") || f.contains("token")), "secrets must not be flags");
        let envs: Vec<_> = NtaConfig::settings().iter().map(|s| s.env()).collect();
        for e in [
            "NTA_NATS_URL",
            "NTA_DATABASE_URL",
            "NTA_METRICS_ADDR",
            "NTA_AGENT_ID",
            "NTA_INTERFACE",
            "NTA_RETENTION_DAYS",
            "NTA_MODEL",
            "NTA_DASHBOARD_ADDR",
            "NTA_LOG",
            "NTA_DASHBOARD_PASSWORD",
            "NTA_DASHBOARD_TOKEN",
        ] {
            assert!(envs.iter().any(|x| x == e), "{e} missing");
        }
        // The global --log flag is the `log` setting.
        let c = load_test(None, &[("NTA_LOG", "warn")], &["--log", "debug", "decode", "x.pcap"]).unwrap();
        assert_eq!(c.log, "debug");
        // -i conflicts with --read, as before.
        assert!(crate::cli::command()
            .try_get_matches_from(["nta", "run", "-t", "agent", "-i", "eth0", "-r", "f"])
            .is_err());
    }

    #[test]
    fn show_redacts_secrets_and_reads_back() {
        let c = load_test(
            None,
            &[
                ("NTA_DASHBOARD_TOKEN", "s3cret"),
                ("NTA_DATABASE_URL", "postgres://nta:pw1@db/nta"),
                ("NTA_TELEGRAM_TOKEN", "123:tg-secret"),
                ("NTA_NOTIFIER_SMTP_PASSWORD", "mail-secret"),
            ],
            &["run", "-t", "agent"],
        )
        .unwrap();
        let shown = shown(&c);
        assert!(shown.contains("token = \"<redacted>\"") && !shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("tg-secret") && !shown.contains("mail-secret"), "{shown}");
        assert!(shown.contains("telegram_token = \"<redacted>\""), "{shown}");
        assert!(shown.contains("postgres://nta:***@db/nta") && !shown.contains("pw1"), "{shown}");
        assert!(shown.contains("[agent]\n") && shown.contains("# interface (unset)"), "{shown}");
        let mut layers = Layers::new::<NtaConfig>();
        layers.file(&settings::show(&NtaConfig::default()), "shown").unwrap();
    }

    /// The README's settings table is generated: regenerate it with
    /// `NTA_UPDATE_README=1 cargo test -p nta readme`.
    #[test]
    fn readme_settings_table_is_generated() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (start, end) = match (readme.find(BEGIN), readme.find(END)) {
            (Some(s), Some(e)) if s < e => (s + BEGIN.len(), e),
            _ => panic!("README.md lacks the markers {BEGIN:?} ... {END:?} around the settings table"),
        };
        let table = settings::markdown::<NtaConfig>();
        if readme[start..end] != table {
            if std::env::var_os("NTA_UPDATE_README").is_some() {
                std::fs::write(&path, format!("{}{table}{}", &readme[..start], &readme[end..])).unwrap();
                return;
            }
            panic!(
                "README.md's settings table differs from the settings' definitions; regenerate it with \
                 `NTA_UPDATE_README=1 cargo test -p nta readme` (or paste `nta config --markdown` between the markers)"
            );
        }
    }
}
