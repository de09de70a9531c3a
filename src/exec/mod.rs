//! The executor: runs stale actions in dependency order, in parallel, and materializes outputs.
