//! Backends: where events are searched and alerts and state are written. The engine talks to
//! one narrow trait; `elasticsearch` is production, `embedded` runs on local files.

pub mod elasticsearch;
pub mod embedded;
