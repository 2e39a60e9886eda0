//! Random-forest classification of windows (issue 4). Nothing here yet.
