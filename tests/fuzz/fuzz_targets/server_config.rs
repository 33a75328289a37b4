//! The server's configuration file (`quiver-server --config`, TOML): any file is read and
//! checked into a configuration or refused with an error naming the field, never a panic.
//! quiver-server is a binary-only crate, so its `config.rs` is compiled into this target as is.

#![no_main]
#[allow(dead_code)]
#[path = "../../../server/src/config.rs"]
mod config;

use clap::Parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the server reads the file as UTF-8 and says so
    };
    let file = match config::ServerArgs::from_toml(text) {
        Ok(file) => file,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let args = config::ServerArgs::parse_from(["quiver-server"]).or(file);
    if let Ok(config) = args.resolve() {
        let _ = config.listen_addrs();
        let _ = config.store_options();
    }
});
