//! Ingestor (in progress).
