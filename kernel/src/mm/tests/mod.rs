//! Unit tests of the arch-independent mm core (the format-dependent scenarios run in
//! the arch crates, through `mm::sim::scenarios`).

mod altmap;
mod buddy;
mod buddy_blocks;
mod layout;
mod memmap_on_memory;
mod nvdimm;
mod sparse;
