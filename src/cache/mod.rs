//! The content-addressed cache: CAS objects, action records, stat cache, locks.
