//! (sim: work in progress)
