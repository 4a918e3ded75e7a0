pub mod harness;
pub mod smtp_server;
