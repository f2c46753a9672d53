//! (policy: work in progress)
