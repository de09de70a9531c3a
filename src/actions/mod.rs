//! Action kinds: what each node of the plan does when it runs.
