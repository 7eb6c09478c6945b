//! Chaos runs (`make chaos`): what they need beyond the lab itself: a seeded random source,
//! the settled-state verdict, a process's footprint in `/proc`, random manifest edits and a
//! wall clock of one agent's own.

pub mod churn;
pub mod faketime;
pub mod footprint;
pub mod rng;
pub mod settle;

pub use rng::Rng;
