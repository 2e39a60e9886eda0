//! Settings: each role's config struct is the single definition of its settings.
//!
//! # Design
//!
//! [`settings!`] is a small declarative macro. From one struct definition (field, type,
//! default, doc comment = help text, and for a few fields an older flag or environment name)
//! it generates the struct with serde `Serialize`/`Deserialize` (`default`,
//! `deny_unknown_fields`), its `Default`, and its field table ([`Settings::settings`]: key,
//! kind, help, flag, environment variable, type check). Everything else is generic over that
//! table:
//!
//! * [`Layers`] merges defaults < TOML file < environment < flags into one `toml::Table`: file
//!   keys are merged one by one, environment variables and flags are parsed by the field's
//!   [`Kind`] and set the same way, and every value is checked against its field's type as it
//!   arrives, so an unknown key or a bad value is an error naming the key and where it came
//!   from. Serde then builds the structs from the merged table (absent keys take the default).
//! * [`markdown`] renders the reference table of every setting, [`show`] the effective values.
//! * The `nta` binary builds its flags from the same table with clap's builder API.
//!
//! Why a macro rather than figment: figment layers values but would still need a second
//! description of every setting for flags, environment names and help text; a proc-macro
//! crate would be more code than this `macro_rules!` for the few field types settings use.
//!
//! # Naming rules
//!
//! Field `name` of a struct mounted as section `sec` (`[sec]` in the file) is TOML key
//! `sec.name`, flag `--sec-name` and environment variable `NTA_SEC_NAME`; top-level fields
//! drop the section (`nats_url`, `--nats-url`, `NTA_NATS_URL`). A field may keep an older name
//! with `#[setting(flag = "interface", short = 'i', env = "NTA_INTERFACE")]`. Secrets
//! (`secret = true`) get no flag, since command lines show in `ps`: environment or file only.
//! Durations are integers with the unit in the name (`_ms`, `_s`, `_hours`), read through an
//! accessor without the unit that returns a `Duration`. An empty environment variable or flag
//! value resets a setting to its default.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use toml::{Table, Value};

pub use serde;
// The macro names serde as `settings::serde`, which must also resolve inside this crate's tests.
extern crate self as settings;
pub use toml;

mod url;
pub use url::{percent_decode, redact_nats_url, redact_url};

/// NATS server every role connects to unless configured (`nats_url`).
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// PostgreSQL database of the roles that store or read data (`database_url`).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/nta";
/// Address of the Prometheus metrics endpoint (`metrics_addr`).
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// How a value given as text (environment, flag) is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Float,
    Bool,
}

impl Kind {
    fn parse(self, text: &str) -> Result<Value, &'static str> {
        let t = text.trim();
        match self {
            Kind::Str => Ok(Value::String(text.to_string())),
            Kind::Int => t.parse().map(Value::Integer).map_err(|_| "an integer"),
            Kind::Float => t.parse().map(Value::Float).map_err(|_| "a number"),
            Kind::Bool => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
                "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
                _ => Err("true or false"),
            },
        }
    }
}

/// Types a setting may have.
pub trait SettingType {
    const KIND: Kind;
    const OPTIONAL: bool = false;
}

macro_rules! setting_types {
    ($kind:ident: $($t:ty),*) => { $(impl SettingType for $t { const KIND: Kind = Kind::$kind; })* };
}
setting_types!(Str: String, std::path::PathBuf, std::net::SocketAddr, std::net::IpAddr);
setting_types!(Int: u8, u16, u32, u64, usize, i8, i16, i32, i64);
setting_types!(Float: f32, f64);
setting_types!(Bool: bool);

impl<T: SettingType> SettingType for Option<T> {
    const KIND: Kind = T::KIND;
    const OPTIONAL: bool = true;
}

/// One field of a settings struct, as written in its definition.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    /// The doc comment (help text), one line per doc line.
    pub doc: &'static str,
    pub kind: Kind,
    pub optional: bool,
    /// Deserializes a value as the field's type (the error names what was expected).
    pub check: fn(Value) -> Result<(), String>,
    /// Flag name (without `--`) kept from before the naming rule.
    pub flag: Option<&'static str>,
    pub short: Option<char>,
    /// Environment variable kept from before the naming rule.
    pub env: Option<&'static str>,
    /// No flag; redacted by [`show`].
    pub secret: bool,
    /// A comma-separated list whose flag may be given several times (`--webhook A --webhook
    /// B` is `A,B`).
    pub list: bool,
    /// Default as documented, for defaults computed at run time (host name, ...).
    pub default_doc: Option<&'static str>,
}

impl Field {
    /// What the macro starts from; `#[setting(...)]` options override it.
    pub const BASE: Field = Field {
        name: "",
        doc: "",
        kind: Kind::Str,
        optional: false,
        check: |_| Ok(()),
        flag: None,
        short: None,
        env: None,
        secret: false,
        list: false,
        default_doc: None,
    };
}

/// Type check of one value, used through [`Field::check`].
pub fn check<T: DeserializeOwned>(value: Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string().trim().to_string())
}

/// A field with its place in the configuration.
#[derive(Debug, Clone)]
pub struct Setting {
    /// `agent`, or empty at the top level.
    pub section: String,
    /// Dotted TOML key: `agent.interface`, `nats_url`.
    pub key: String,
    pub field: Field,
}

impl Setting {
    pub fn new(section: &str, field: Field) -> Setting {
        Setting { section: section.to_string(), key: join(section, field.name), field }
    }

    /// The doc comment on one line.
    pub fn help(&self) -> String {
        self.field.doc.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// Long flag without `--`; `None` for secrets.
    pub fn flag(&self) -> Option<String> {
        if self.field.secret {
            return None;
        }
        Some(self.field.flag.map(str::to_string).unwrap_or_else(|| self.key.replace(['.', '_'], "-")))
    }

    pub fn env(&self) -> String {
        self.field
            .env
            .map(str::to_string)
            .unwrap_or_else(|| format!("NTA_{}", self.key.replace('.', "_").to_uppercase()))
    }
}

/// `section.name`, or `name` at the top level.
pub fn join(section: &str, name: &str) -> String {
    if section.is_empty() {
        name.to_string()
    } else {
        format!("{section}.{name}")
    }
}

/// A struct defined with [`settings!`].
pub trait Settings: Default + Serialize + DeserializeOwned {
    /// Appends the settings of this struct mounted at `section`: its own fields, those of its
    /// flattened parts, then those of its sections.
    fn collect(section: &str, out: &mut Vec<Setting>);

    fn settings() -> Vec<Setting> {
        let mut out = Vec::new();
        Self::collect("", &mut out);
        out
    }

    /// Every setting's value as a TOML table (unset optional settings are absent).
    fn to_table(&self) -> Table {
        match Value::try_from(self) {
            Ok(Value::Table(t)) => t,
            _ => Table::new(),
        }
    }
}

/// Defines a settings struct; see the crate documentation.
///
/// ```
/// settings::settings! {
///     /// Example.
///     #[derive(Debug, Clone)]
///     pub struct Example {
///         /// Records per batch.
///         #[setting(flag = "batch-size")]
///         pub batch_size: usize = 500,
///         /// Longest time (ms) a batch waits.
///         pub batch_timeout_ms: u64 = 1000,
///     }
///     // `flatten { part: Part }`: another settings struct whose keys share this section.
///     // `sections { agent: AgentConfig }`: settings structs mounted as `[agent]`.
///     runtime {
///         /// Set by the program, not a setting (skipped by serde).
///         pub nats_url: String = settings::DEFAULT_NATS_URL.into(),
///     }
/// }
/// assert_eq!(Example::default().batch_size, 500);
/// ```
#[macro_export]
macro_rules! settings {
    (
        $(#[$sattr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $(#[setting($($opt:ident = $val:expr),* $(,)?)])?
                $fvis:vis $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
        $(flatten {
            $( $(#[doc = $xdoc:literal])* $xvis:vis $xfield:ident : $xty:ty ),* $(,)?
        })?
        $(sections {
            $( $(#[doc = $sdoc:literal])* $svis:vis $sfield:ident : $sty:ty ),* $(,)?
        })?
        $(runtime {
            $( $(#[doc = $rdoc:literal])* $rvis:vis $rfield:ident : $rty:ty = $rdefault:expr ),* $(,)?
        })?
    ) => {
        $(#[$sattr])*
        #[derive($crate::serde::Serialize, $crate::serde::Deserialize)]
        #[serde(crate = "settings::serde", default, deny_unknown_fields)]
        $vis struct $name {
            $( $(#[doc = $doc])+ $fvis $field: $ty, )*
            $($( $(#[doc = $xdoc])* #[serde(flatten)] $xvis $xfield: $xty, )*)?
            $($( $(#[doc = $sdoc])* $svis $sfield: $sty, )*)?
            $($( $(#[doc = $rdoc])* #[serde(skip)] $rvis $rfield: $rty, )*)?
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $default, )*
                    $($( $xfield: ::core::default::Default::default(), )*)?
                    $($( $sfield: ::core::default::Default::default(), )*)?
                    $($( $rfield: $rdefault, )*)?
                }
            }
        }

        impl $crate::Settings for $name {
            fn collect(section: &str, out: &mut ::std::vec::Vec<$crate::Setting>) {
                $(
                    out.push($crate::Setting::new(section, $crate::Field {
                        name: stringify!($field),
                        doc: concat!($($doc, "\n"),+),
                        kind: <$ty as $crate::SettingType>::KIND,
                        optional: <$ty as $crate::SettingType>::OPTIONAL,
                        check: $crate::check::<$ty>,
                        $($($opt: ::core::convert::From::from($val),)*)?
                        ..$crate::Field::BASE
                    }));
                )*
                $($( <$xty as $crate::Settings>::collect(section, out); )*)?
                $($( <$sty as $crate::Settings>::collect(&$crate::join(section, stringify!($sfield)), out); )*)?
            }
        }
    };
}

/// A configuration error naming the key and where the value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Values merged so far, over the defaults (which serde fills in for absent keys).
pub struct Layers {
    settings: Vec<Setting>,
    tree: Table,
}

impl Layers {
    pub fn new<T: Settings>() -> Layers {
        Layers { settings: T::settings(), tree: Table::new() }
    }

    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    fn find(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    fn is_section(&self, key: &str) -> bool {
        self.settings.iter().any(|s| s.section == key || s.section.starts_with(&format!("{key}.")))
    }

    /// Merges a TOML document over what is there.
    pub fn file(&mut self, text: &str, origin: &str) -> Result<(), Error> {
        let table: Table = text.parse().map_err(|e| Error(format!("{origin}: {e}")))?;
        self.merge(table, "", origin)
    }

    fn merge(&mut self, table: Table, prefix: &str, origin: &str) -> Result<(), Error> {
        for (name, value) in table {
            let key = join(prefix, &name);
            if self.find(&key).is_some() {
                self.put(&key, value, origin)?;
            } else if self.is_section(&key) {
                match value {
                    Value::Table(t) => self.merge(t, &key, origin)?,
                    _ => {
                        return Err(Error(format!("{origin}: `{key}` is a section: write its settings under [{key}]")))
                    }
                }
            } else {
                return Err(self.unknown(&key, origin));
            }
        }
        Ok(())
    }

    /// Sets `key` from text (an environment variable or a flag); empty text resets it.
    pub fn set(&mut self, key: &str, text: &str, origin: &str) -> Result<(), Error> {
        let Some(s) = self.find(key) else { return Err(self.unknown(key, origin)) };
        if text.is_empty() {
            remove(&mut self.tree, key);
            return Ok(());
        }
        let value = s
            .field
            .kind
            .parse(text)
            .map_err(|expected| Error(format!("{origin}: `{key}` expects {expected}, got {text:?}")))?;
        self.put(key, value, origin)
    }

    /// Applies the environment variable of every setting that `var` finds.
    pub fn env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        let found: Vec<(String, String, String)> =
            self.settings.iter().filter_map(|s| var(&s.env()).map(|text| (s.key.clone(), s.env(), text))).collect();
        for (key, name, text) in found {
            self.set(&key, &text, &format!("environment variable {name}"))?;
        }
        Ok(())
    }

    fn put(&mut self, key: &str, value: Value, origin: &str) -> Result<(), Error> {
        let s = self.find(key).expect("known key");
        (s.field.check)(value.clone()).map_err(|e| Error(format!("{origin}: `{key}`: {e}")))?;
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().expect("non-empty key");
        let mut table = &mut self.tree;
        for part in parts {
            let entry = table.entry(part.to_string()).or_insert_with(|| Value::Table(Table::new()));
            table = entry.as_table_mut().expect("sections are tables");
        }
        table.insert(last.to_string(), value);
        Ok(())
    }

    fn unknown(&self, key: &str, origin: &str) -> Error {
        let near = self.settings.iter().map(|s| (distance(&s.key, key), &s.key)).min();
        let hint = match near {
            Some((d, k)) if d <= 3 => format!(" (did you mean `{k}`?)"),
            _ => String::new(),
        };
        Error(format!("{origin}: unknown setting `{key}`{hint}; `nta config --markdown` lists them all"))
    }

    /// The merged values (only what was set).
    pub fn table(&self) -> &Table {
        &self.tree
    }

    /// Builds the configuration: merged values over the defaults.
    pub fn build<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(Value::Table(self.tree.clone())).map_err(|e| Error(e.to_string().trim().to_string()))
    }
}

fn remove(tree: &mut Table, key: &str) {
    match key.split_once('.') {
        None => {
            tree.remove(key);
        }
        Some((head, rest)) => {
            if let Some(Value::Table(t)) = tree.get_mut(head) {
                remove(t, rest);
            }
        }
    }
}

fn lookup<'a>(tree: &'a Table, key: &str) -> Option<&'a Value> {
    match key.split_once('.') {
        None => tree.get(key),
        Some((head, rest)) => lookup(tree.get(head)?.as_table()?, rest),
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The default of `s` as documented (Markdown): its `default_doc`, else its value in `defaults`
/// (the serialized default configuration), else "unset".
pub fn documented_default(s: &Setting, defaults: &Table) -> String {
    match (s.field.default_doc, lookup(defaults, &s.key)) {
        (Some(d), _) => d.to_string(),
        (None, None) => "unset".into(),
        (None, Some(Value::String(v))) => format!("`{v}`"),
        (None, Some(v)) => format!("`{v}`"),
    }
}

/// Markdown table of every setting of `T`: TOML key, flag, environment variable, default,
/// meaning.
pub fn markdown<T: Settings>() -> String {
    let defaults = T::default().to_table();
    let mut out = String::from("| TOML key | flag | environment | default | meaning |\n|---|---|---|---|---|\n");
    for s in T::settings() {
        let flag = match (s.flag(), s.field.short) {
            (Some(f), Some(c)) => format!("`--{f}`, `-{c}`"),
            (Some(f), None) => format!("`--{f}`"),
            (None, _) => "none (secret)".into(),
        };
        let default = documented_default(&s, &defaults);
        out.push_str(&format!("| `{}` | {flag} | `{}` | {} | {} |\n", s.key, s.env(), cell(&default), cell(&s.help())));
    }
    out
}

/// The effective values of `cfg` as a TOML document, secrets redacted, unset settings as
/// comments.
pub fn show<T: Settings>(cfg: &T) -> String {
    let values = cfg.to_table();
    let mut out = String::new();
    let mut section = String::new();
    for s in T::settings() {
        if s.section != section {
            section = s.section.clone();
            out.push_str(&format!("\n[{section}]\n"));
        }
        match lookup(&values, &s.key) {
            Some(_) if s.field.secret => out.push_str(&format!("{} = \"<redacted>\"\n", s.field.name)),
            Some(v) => out.push_str(&format!("{} = {v}\n", s.field.name)),
            None => out.push_str(&format!("# {} (unset)\n", s.field.name)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    settings! {
        #[derive(Debug, Clone, PartialEq)]
        pub struct Part {
            /// Lateness (ms).
            pub lateness_ms: u64 = 2000,
        }
    }

    settings! {
        #[derive(Debug, Clone, PartialEq)]
        pub struct Role {
            /// Records per batch.
            #[setting(flag = "batch-size", env = "NTA_BATCH")]
            pub batch_size: usize = 500,
            /// Optional filter.
            pub bpf: Option<String> = None,
            /// Promiscuous.
            pub promisc: bool = false,
            /// Secret.
            #[setting(secret = true)]
            pub password: Option<String> = None,
        }
        flatten {
            pub part: Part,
        }
        runtime {
            /// Not a setting.
            pub url: String = "x".into(),
        }
    }

    settings! {
        #[derive(Debug, Clone, PartialEq)]
        pub struct Top {
            /// Server URL.
            pub nats_url: String = DEFAULT_NATS_URL.into(),
        }
        sections {
            pub role: Role,
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn table_and_names() {
        let keys: Vec<_> = Top::settings().iter().map(|s| (s.key.clone(), s.flag(), s.env())).collect();
        assert_eq!(
            keys,
            [
                ("nats_url".into(), Some("nats-url".into()), "NTA_NATS_URL".into()),
                ("role.batch_size".into(), Some("batch-size".into()), "NTA_BATCH".into()),
                ("role.bpf".into(), Some("role-bpf".into()), "NTA_ROLE_BPF".into()),
                ("role.promisc".into(), Some("role-promisc".into()), "NTA_ROLE_PROMISC".into()),
                ("role.password".into(), None, "NTA_ROLE_PASSWORD".into()),
                ("role.lateness_ms".into(), Some("role-lateness-ms".into()), "NTA_ROLE_LATENESS_MS".into()),
            ]
        );
        assert_eq!(Top::settings()[0].help(), "Server URL.");
    }

    #[test]
    fn precedence_default_file_env_flag() {
        let mut l = Layers::new::<Top>();
        assert_eq!(l.build::<Top>().unwrap(), Top::default());
        l.file("nats_url = 'nats://file:1'\n[role]\nbatch_size = 10\nbpf = 'port 53'\nlateness_ms = 5\n", "f.toml")
            .unwrap();
        l.env(env(&[("NTA_BATCH", "20"), ("NTA_ROLE_PROMISC", "yes"), ("NTA_ROLE_BPF", "")])).unwrap();
        l.set("role.batch_size", "30", "--batch-size").unwrap();
        let c: Top = l.build().unwrap();
        assert_eq!(c.nats_url, "nats://file:1");
        assert_eq!(c.role.batch_size, 30);
        assert!(c.role.promisc);
        assert_eq!(c.role.bpf, None, "an empty value resets to the default");
        assert_eq!(c.role.part.lateness_ms, 5);
        assert_eq!(c.role.url, "x");
    }

    #[test]
    fn errors_name_the_key() {
        let mut l = Layers::new::<Top>();
        let e = l.file("[role]\nbatch_siz = 1\n", "f.toml").unwrap_err().0;
        assert!(e.contains("unknown setting `role.batch_siz`") && e.contains("did you mean `role.batch_size`"), "{e}");
        let e = l.file("[role]\nbatch_size = 'many'\n", "f.toml").unwrap_err().0;
        assert!(e.starts_with("f.toml: `role.batch_size`: invalid type: string"), "{e}");
        let e = l.file("[role]\nbatch_size = -1\n", "f.toml").unwrap_err().0;
        assert!(e.contains("`role.batch_size`"), "{e}");
        let e = l.file("role = 3\n", "f.toml").unwrap_err().0;
        assert!(e.contains("`role` is a section"), "{e}");
        let e = l.env(env(&[("NTA_ROLE_PROMISC", "maybe")])).unwrap_err().0;
        assert_eq!(e, "environment variable NTA_ROLE_PROMISC: `role.promisc` expects true or false, got \"maybe\"");
        let e = l.set("role.url", "y", "--role-url").unwrap_err().0;
        assert!(e.contains("unknown setting `role.url`"), "runtime fields are not settings: {e}");
    }

    #[test]
    fn docs_and_show() {
        let md = markdown::<Top>();
        assert!(
            md.contains("| `role.batch_size` | `--batch-size` | `NTA_BATCH` | `500` | Records per batch. |"),
            "{md}"
        );
        assert!(md.contains("| `role.password` | none (secret) | `NTA_ROLE_PASSWORD` | unset | Secret. |"), "{md}");
        let mut c = Top::default();
        c.role.password = Some("hunter2".into());
        let shown = show(&c);
        assert!(
            shown.contains("[role]\nbatch_size = 500\n# bpf (unset)\n") && shown.contains("password = \"<redacted>\""),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"));
        // What `show` prints reads back as the same configuration.
        let mut l = Layers::new::<Top>();
        l.file(&show(&Top::default()), "shown").unwrap();
        assert_eq!(l.build::<Top>().unwrap(), Top::default());
    }
}
