//! Fuzz target: no rule file makes the loader panic, and every error names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz/rule.toml");
    if let Err(e) = detectd::rules::load_str(text, path) {
        assert!(e.to_string().contains("fuzz/rule.toml"), "{e}");
    }
});
