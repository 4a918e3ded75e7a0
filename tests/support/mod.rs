pub mod audit;
pub mod dkim;
pub mod harness;
pub mod smtp_server;
pub mod tls;
