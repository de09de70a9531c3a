//! The build plan: a DAG of actions with content-derived keys.
