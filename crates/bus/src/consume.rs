//! The consumer side every role shares: opening a pull consumer's message stream, taking what
//! is ready in chunks, the loop around them (retry, reopen, timers, shutdown), the pending
//! gauge and the retry backoff.

use async_nats::jetstream::{self, consumer::pull};
use futures::{FutureExt, Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{debug, info, warn};

/// A durable pull consumer.
pub type PullConsumer = jetstream::consumer::Consumer<pull::Config>;

/// `first` plus the messages already waiting in `messages`, up to `max` in all, without waiting
/// for more: a busy stream is handled in chunks (one transaction each), a quiet one message by
/// message with no added latency.
pub fn take_ready<T, E, S>(first: T, messages: &mut S, max: usize) -> Vec<T>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut chunk = vec![first];
    while chunk.len() < max.max(1) {
        match messages.next().now_or_never() {
            Some(Some(Ok(m))) => chunk.push(m),
            Some(Some(Err(e))) => tracing::debug!(error = %e, "consumer stream"),
            _ => break,
        }
    }
    chunk
}

/// Doubling retry delay between `min` and `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, current: min }
    }

    /// The delay to wait now.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// Returns the delay to wait now and doubles the next one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        d
    }

    /// Back to the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// Keeps `gauge{consumer=<durable>}` at the consumer's undelivered message count.
pub fn spawn_pending_gauge(
    mut consumer: PullConsumer,
    gauge: &'static str,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match consumer.info().await {
                Ok(info) => {
                    let durable = info.config.durable_name.clone().unwrap_or_default();
                    metrics::gauge!(gauge, "consumer" => durable).set(info.num_pending as f64);
                }
                Err(e) => debug!(error = %e, "consumer info failed"),
            }
        }
    })
}

/// Messages of `stream` that `durable` has not yet seen acknowledged (undelivered plus delivered
/// but unacked), or `None` while the stream or the consumer does not exist (benchmarks poll it).
pub async fn backlog(client: &async_nats::Client, stream: &str, durable: &str) -> anyhow::Result<Option<u64>> {
    let js = jetstream::new(client.clone());
    let Ok(stream) = js.get_stream(stream).await else { return Ok(None) };
    let Ok(mut consumer) = stream.get_consumer::<pull::Config>(durable).await else { return Ok(None) };
    let info = consumer.info().await?;
    Ok(Some(info.num_pending + info.num_ack_pending as u64))
}

/// Waits until the durable consumer `durable` of `stream` exists and has delivered, and seen
/// acknowledged, every message (what a replay waits for before it reports what landed).
pub async fn wait_drained(nats: &crate::Nats, stream: &str, durable: &str) -> anyhow::Result<()> {
    let js = jetstream::new(crate::connect(nats, "nta-drain-wait").await?);
    loop {
        if let Ok(stream) = js.get_stream(stream).await {
            if let Ok(mut consumer) = stream.get_consumer::<pull::Config>(durable).await {
                let info = consumer.info().await?;
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The shutdown signal of a role, awaitable any number of times (cancel-safe).
pub struct Shutdown<'a> {
    signal: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    requested: bool,
}

impl<'a> Shutdown<'a> {
    pub fn new(signal: impl Future<Output = ()> + Send + 'a) -> Shutdown<'a> {
        Shutdown { signal: Box::pin(signal), requested: false }
    }

    /// Resolves once shutdown is asked for (at once if it already was).
    pub async fn wait(&mut self) {
        if !self.requested {
            (&mut self.signal).await;
            self.requested = true;
        }
    }

    pub fn requested(&self) -> bool {
        self.requested
    }

    /// Sleeps for `d` unless shutdown comes first; returns false in that case.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.wait() => false,
        }
    }
}

/// What a consumer loop ([`run`]) does with its messages and timers.
pub trait Handler {
    /// Handles messages taken together (up to [`LoopOptions::max_chunk`]).
    fn handle(
        &mut self,
        chunk: Vec<jetstream::Message>,
        shutdown: &mut Shutdown<'_>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Runs when timer `index` of [`LoopOptions::timers`] fires.
    fn tick(&mut self, index: usize, shutdown: &mut Shutdown<'_>) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// True once the handler wants the loop to end (checked after every step).
    fn done(&self) -> bool {
        false
    }
}

/// Shape of a consumer loop.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Stream name, for logs.
    pub stream: &'static str,
    /// Messages the server sends per pull request.
    pub max_messages_per_batch: usize,
    /// Messages handled together at most.
    pub max_chunk: usize,
    /// Periods of the handler's timers.
    pub timers: Vec<Duration>,
}

/// Opens the consumer's message stream, retrying for a while (the server may be restarting).
pub async fn messages(consumer: &PullConsumer, max_messages_per_batch: usize) -> anyhow::Result<pull::Stream> {
    let mut backoff = Backoff::new(Duration::from_millis(400), Duration::from_secs(30));
    let mut retries = 10;
    loop {
        match consumer
            .stream()
            .max_messages_per_batch(max_messages_per_batch.max(1))
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
        {
            Ok(s) => return Ok(s),
            Err(e) if retries > 0 => {
                retries -= 1;
                warn!(error = %e, "opening the consumer stream");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => anyhow::bail!("opening the consumer stream: {e}"),
        }
    }
}

/// The consumer loop: messages in chunks of what is ready, the handler's timers, a stream
/// that ended is reopened, and shutdown ends the loop between two steps (a step in progress
/// is finished first).
pub async fn run<H: Handler>(
    consumer: &PullConsumer,
    opts: &LoopOptions,
    handler: &mut H,
    shutdown: &mut Shutdown<'_>,
) -> anyhow::Result<()> {
    let pause = Duration::from_millis(200);
    let mut messages = messages(consumer, opts.max_messages_per_batch).await?;
    let mut timers: Vec<Interval> = opts
        .timers
        .iter()
        .map(|&every| {
            let mut t = tokio::time::interval(every.max(Duration::from_millis(1)));
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        })
        .collect();
    while !handler.done() && !shutdown.requested() {
        tokio::select! {
            _ = shutdown.wait() => {
                info!(stream = opts.stream, "consumer stopping");
            }
            item = messages.next() => match item {
                Some(Ok(msg)) => {
                    let chunk = take_ready(msg, &mut messages, opts.max_chunk);
                    handler.handle(chunk, shutdown).await?;
                }
                Some(Err(e)) => {
                    warn!(stream = opts.stream, error = %e, "consuming");
                    tokio::time::sleep(pause).await;
                }
                None => {
                    warn!(stream = opts.stream, "consumer stream ended; reopening");
                    tokio::time::sleep(pause).await;
                    messages = self::messages(consumer, opts.max_messages_per_batch).await?;
                }
            },
            index = next_tick(&mut timers) => handler.tick(index, shutdown).await?,
        }
    }
    Ok(())
}

/// Index of the first timer to fire (never resolves without timers).
async fn next_tick(timers: &mut [Interval]) -> usize {
    if timers.is_empty() {
        return std::future::pending().await;
    }
    let ticks = timers.iter_mut().map(|t| Box::pin(t.tick()));
    futures::future::select_all(ticks).await.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_is_ready_up_to_max() {
        let mut s = futures::stream::iter([Ok::<_, String>(2), Err("x".into()), Ok(3), Ok(4)]);
        assert_eq!(take_ready(1, &mut s, 3), vec![1, 2, 3]);
        assert_eq!(take_ready(9, &mut s, 5), vec![9, 4]);
        let mut pending = futures::stream::pending::<Result<i32, String>>();
        assert_eq!(take_ready(7, &mut pending, 5), vec![7]);
    }

    #[test]
    fn backoff_doubles_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.current(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn shutdown_is_awaitable_again() {
        let mut s = Shutdown::new(async {});
        assert!(!s.requested());
        s.wait().await;
        assert!(s.requested());
        s.wait().await;
        assert!(!s.sleep(Duration::from_secs(60)).await);
    }
}
