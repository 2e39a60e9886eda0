//! Shared piece of the services' consumer loops.

use futures::{FutureExt, Stream, StreamExt};

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
}
