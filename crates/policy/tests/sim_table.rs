//! The simulator's table as `holdfast simulate` prints it: both policies for every
//! scenario, side by side, and the count of broken invariants. Set `SIM_SEEDS` to print
//! a larger run: `SIM_SEEDS=200 cargo test -p holdfast-policy --test sim_table -- --nocapture`.

#![allow(clippy::unwrap_used)] // a test: a broken scenario should fail loudly

use holdfast_policy::sim::{NAMES, Report, Scenario};

#[test]
fn the_table_shows_both_policies_for_every_scenario() {
    let scenarios = Scenario::all().unwrap();
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let table = Report::run(&scenarios, 0..seeds).to_string();
    println!("{table}");
    for name in NAMES {
        let row = table
            .lines()
            .position(|l| l.starts_with(name) && l.contains("holdfast"));
        let row = row.unwrap_or_else(|| panic!("no holdfast row for {name}:\n{table}"));
        let next = table.lines().nth(row + 1).unwrap_or_default();
        assert!(
            next.trim_start().starts_with("naive"),
            "no naive row under {name}:\n{table}"
        );
    }
    assert!(table.contains("invariant violations: 0"), "{table}");
}
