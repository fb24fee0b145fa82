//! Tidy: the layering in DESIGN.md's crate table, held by a test.
//!
//! A crate may depend only on crates above it in the table; only the binary and the
//! benchmarks may use `anyhow`; every library module opens with a `//!` saying why it
//! exists. Reads `cargo metadata` and the source tree, so a new crate or module is
//! checked the moment it appears.

#![allow(clippy::expect_used)] // a test: a broken workspace should fail loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// DESIGN.md's table: each crate and the crates of ours it may depend on.
const LAYERS: &[(&str, &[&str])] = &[
    ("holdfast-policy", &[]),
    ("holdfast-llm", &["holdfast-policy"]),
    ("holdfast-mock", &["holdfast-policy", "holdfast-llm"]),
    ("holdfast-store", &["holdfast-policy"]),
    (
        "holdfast-engine",
        &["holdfast-policy", "holdfast-llm", "holdfast-store"],
    ),
    (
        "holdfast-config",
        &[
            "holdfast-policy",
            "holdfast-llm",
            "holdfast-store",
            "holdfast-engine",
        ],
    ),
    // Spans from the gateway's and the engine's events, and their export (ARCHITECTURE.md).
    (
        "holdfast-telemetry",
        &[
            "holdfast-policy",
            "holdfast-llm",
            "holdfast-engine",
            "holdfast-config",
        ],
    ),
    (
        "holdfast-server",
        &[
            "holdfast-policy",
            "holdfast-llm",
            "holdfast-mock",
            "holdfast-store",
            "holdfast-engine",
            "holdfast-config",
            "holdfast-telemetry",
            // The server wires the quality loop (DESIGN: "a new capability is a new
            // crate, wired by the server"): its in-process subject implements the
            // quality crate's trait, and the gate of a reload runs its suites.
            "holdfast-quality",
            "holdfast-metrics",
            "holdfast-alerts",
            // Shared health: its loop reads and changes the running registry.
            "holdfast-cluster",
        ],
    ),
    // Health shared by nodes through the store (ARCHITECTURE.md).
    ("holdfast-cluster", &["holdfast-policy", "holdfast-store"]),
    (
        "holdfast-metrics",
        &["holdfast-policy", "holdfast-engine", "holdfast-quality"],
    ),
    (
        "holdfast-alerts",
        &["holdfast-policy", "holdfast-llm", "holdfast-config"],
    ),
    (
        "holdfast-quality",
        &["holdfast-policy", "holdfast-llm", "holdfast-store"],
    ),
    (
        "holdfast-chaos",
        &["holdfast-policy", "holdfast-llm", "holdfast-mock"],
    ),
    ("holdfast", &["*"]),
    ("holdfast-bench", &["*"]),
];

/// Crates allowed to depend on `anyhow`: the binary and the benchmarks.
const ANYHOW_ALLOWED: &[&str] = &["holdfast", "holdfast-bench"];

struct Package {
    name: String,
    manifest: PathBuf,
    /// (dependency name, kind: "normal", "dev" or "build")
    deps: Vec<(String, String)>,
}

fn workspace_packages() -> Vec<Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    json["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| Package {
            name: p["name"].as_str().expect("name").to_owned(),
            manifest: PathBuf::from(p["manifest_path"].as_str().expect("manifest_path")),
            deps: p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
                    (d["name"].as_str().expect("dep name").to_owned(), kind)
                })
                .collect(),
        })
        .collect()
}

#[test]
fn every_crate_is_in_the_design_table() {
    let known: Vec<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
    for package in workspace_packages() {
        assert!(
            known.contains(&package.name.as_str()),
            "{} is not in DESIGN.md's crate table (and in LAYERS here): add it to both",
            package.name
        );
    }
}

#[test]
fn crates_depend_only_on_crates_above_them() {
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let ours: Vec<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
    let mut violations = Vec::new();
    for package in workspace_packages() {
        let Some(allowed) = layers.get(package.name.as_str()) else {
            continue;
        };
        if allowed.contains(&"*") {
            continue;
        }
        for (dep, kind) in &package.deps {
            // A crate's tests may use the crates below it to drive it (the mock provider).
            if kind == "dev" && dep == "holdfast-mock" {
                continue;
            }
            if ours.contains(&dep.as_str()) && !allowed.contains(&dep.as_str()) {
                violations.push(format!("{} depends on {dep} ({kind})", package.name));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn only_the_binary_and_benchmarks_use_anyhow() {
    for package in workspace_packages() {
        let uses = package
            .deps
            .iter()
            .any(|(dep, kind)| dep == "anyhow" && kind == "normal");
        assert!(
            !uses || ANYHOW_ALLOWED.contains(&package.name.as_str()),
            "{} depends on anyhow: library crates expose thiserror enums",
            package.name
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_says_why_it_exists() {
    let mut missing = Vec::new();
    for package in workspace_packages() {
        let src = package.manifest.parent().expect("crate dir").join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            // Test modules included with #[path] belong to the module they test.
            if name == "tests.rs" || name.ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("readable source");
            if !text.trim_start().starts_with("//!") {
                missing.push(file.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a //! doc:\n{}",
        missing.join("\n")
    );
}
