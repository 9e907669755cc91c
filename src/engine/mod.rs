//! Rule execution: one execution of one rule over one window (query and new_terms executors).
