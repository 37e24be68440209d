//! Everything bedrud knows about LiveKit: finding and configuring the embedded server, following
//! an external one, the status both report, the server-API client, the join tokens handed to
//! clients, the URL clients connect to, and the signed webhooks LiveKit sends back.

pub mod binary;
pub mod client;
pub mod client_url;
pub mod config;
pub mod embedded;
pub mod external;
pub mod join_token;
pub mod status;
pub mod webhook;
