//! What bedrud learns from and tells the host it runs on: the address media is offered on
//! (node_ip), the systemd notify protocol, and the allocator setting that returns memory.

pub mod memory;
pub mod node_ip;
pub mod private;
pub mod systemd;
