//! Fuzz target: no input makes the CloudTrail reader panic (any shape: `{"Records": [...]}`,
//! arrays, NDJSON, gzip), and every error names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz/input.json");
    let reader: Box<dyn std::io::BufRead> = Box::new(std::io::Cursor::new(data.to_vec()));
    let opts = detectd::ecs::NormalizeOptions::default();
    detectd::ecs::reader::read_stream(reader, path, &opts, &mut |_| {}, &mut |e| {
        assert_eq!(e.file, path, "{e}");
    });
});
