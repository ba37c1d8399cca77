#![no_std]
// The library target exists so that `agent` can name this crate as a build
// dependency: cargo then rebuilds the agent when the datapath changes.
