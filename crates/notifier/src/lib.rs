//! Alert delivery: the notifier role consumes alert events from `NTA_ALERTS` and sends them to
//! webhooks, Telegram, syslog and e-mail (see [`service`] for the delivery guarantees).

pub mod config;
pub mod metrics;
pub mod notification;
pub mod outputs;
pub mod service;

pub use config::NotifierConfig;
pub use notification::Notification;
pub use outputs::{Outcome, Output};
pub use service::run;
