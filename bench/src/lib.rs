//! Shared pieces of holdfast's benchmarks.
//!
//! Every benchmark measures holdfast and a baseline in the same run on the same machine
//! and prints the ratio: absolute times on a shared 2-core machine mean little, ratios
//! measured side by side do.

pub mod counted;
pub mod cpu;
pub mod gateway;
pub mod load;
pub mod loopback;
pub mod measure;
#[path = "../../test-support/needs.rs"]
pub mod needs;
pub mod process;
pub mod raw;
pub mod recovery;
pub mod slowloris;
pub mod workflows;
