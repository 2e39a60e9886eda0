//! Per-source window features (issue 3). Nothing here yet.
