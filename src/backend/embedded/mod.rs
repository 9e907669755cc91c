//! The embedded backend: an in-process, time-indexed store of ECS documents; alerts and state in local files.
