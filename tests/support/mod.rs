pub mod audit;
pub mod harness;
pub mod smtp_server;
