//! Prints the simulator's table for 200 seeds of every scenario (set `SIM_SEEDS` for
//! another count):
//! `cargo test -p holdfast-policy --test sim_table -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)] // a test: a broken scenario should fail loudly

use holdfast_policy::sim::{Report, Scenario};

#[test]
#[ignore = "prints the 200-seed table; run on demand with --ignored --nocapture"]
fn print_table_for_200_seeds() {
    let scenarios = Scenario::all().unwrap();
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let report = Report::run(&scenarios, 0..seeds);
    println!("{report}");
}
