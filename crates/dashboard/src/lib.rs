//! Web dashboard and API (issue 5). Nothing here yet.
