//! Hook return values, typed as the program entry points return them. (The
//! generated bindings type these constants differently per target.)

/// `TC_ACT_OK`: let the stack have the packet.
pub const TC_PASS: i32 = 0;
/// `TC_ACT_SHOT`: drop the packet.
pub const TC_DROP: i32 = 2;
