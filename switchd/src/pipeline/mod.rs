//! The packet pipeline: flow tables and their classifier (more stages to come).

pub mod classifier;
