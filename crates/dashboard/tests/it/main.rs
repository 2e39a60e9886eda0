//! The dashboard's integration tests, one binary sharing the `common` fixture (a fresh
//! database with the real schema, a private nats-server, the dashboard on a free port).

mod api;
mod browser;
mod common;
mod extent;
mod hardening;
mod live;
mod pcap;
mod perf;
