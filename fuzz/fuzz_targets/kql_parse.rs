//! Fuzz target: no input makes the KQL parser panic or overflow the stack, and every query it
//! accepts prints back to KQL that parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ast) = detectd::kql::parse(input) {
        let printed = ast.to_kql();
        assert_eq!(detectd::kql::parse(&printed), Ok(ast), "printed: {printed:?}");
    }
});
