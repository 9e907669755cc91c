//! `docker compose config` accepts docker-compose.yml, and the image build is attempted when a
//! Docker engine is present. Without the tools (or the engine) the checks print why they skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docker compose` (v2 plugin) or `docker-compose` (v1), whichever answers.
fn compose() -> Option<Vec<&'static str>> {
    let works = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("docker", &["compose"]) {
        Some(vec!["docker", "compose"])
    } else if works("docker-compose", &[]) {
        Some(vec!["docker-compose"])
    } else {
        None
    }
}

#[test]
fn compose_file_is_accepted() {
    let Some(cmd) = compose() else {
        eprintln!("skipping: neither `docker compose` nor `docker-compose` is installed");
        return;
    };
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_services_and_setup_script_fit_together() {
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    for service in ["elasticsearch:", "kibana:", "setup:", "detectd:"] {
        assert!(
            compose.contains(&format!("\n  {service}")),
            "service {service} missing"
        );
    }
    assert!(
        compose.contains("service_completed_successfully"),
        "detectd waits for setup"
    );
    let setup = std::fs::read_to_string(root().join("deploy/setup.sh")).unwrap();
    assert!(
        setup.contains("ingest"),
        "setup loads the sample with detectd ingest"
    );
    assert!(
        setup.contains("saved_objects.ndjson"),
        "setup imports the Kibana objects"
    );
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked --bin detectd"));
    assert!(
        dockerfile.contains("USER detectd"),
        "runtime image runs as non-root"
    );
    for copied in [
        "deploy/setup.sh",
        "kibana",
        "rules",
        "sample",
        "config.toml",
    ] {
        assert!(
            root().join(copied).exists(),
            "{copied} is copied into the image"
        );
    }
}

#[test]
fn image_builds_when_an_engine_is_present() {
    let engine = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !engine {
        eprintln!("skipping the image build: no Docker engine is running here");
        return;
    }
    let out = Command::new("docker")
        .args(["build", "-t", "detectd:test", "."])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
