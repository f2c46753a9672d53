//! (auth: work in progress)
