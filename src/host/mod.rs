//! What bedrud learns from and tells the host it runs on: the address media is offered on
//! (node_ip) and the systemd notify protocol.

pub mod node_ip;
pub mod systemd;
