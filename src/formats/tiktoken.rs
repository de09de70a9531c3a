//! TODO(issue): tiktoken
