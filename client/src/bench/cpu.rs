//! CPU time a process has used, from Linux's `/proc/<pid>/stat`: what the measured phase cost
//! the load generator itself and, with `--server-pid`, the server, per request.
//!
//! On a machine where client and server share the cores, throughput moves with whatever else
//! runs; CPU time per request is the steadier measure of what a change costs, and it tells the
//! client's share from the server's.

use anyhow::{Context, Result, anyhow};

/// Kernel clock ticks per second for `/proc` times (`USER_HZ`): 100 on every Linux architecture
/// Rust targets, whatever the kernel's internal tick rate.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds used so far by process `pid` (`"self"` for this one), all its
/// threads together.
pub fn seconds(pid: &str) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).ok_or_else(|| anyhow!("{path}: unexpected format"))
}

/// utime and stime are fields 14 and 15; the command name (field 2) is in parentheses and may
/// hold spaces, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (quiver server) S 1 4242 4242 0 -1 4194304 9071 0 0 0 250 75 0 0 20 0 \
                    25 0 1234 5678 900 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(3.25));
        assert_eq!(parse_stat("garbage"), None);
        assert!(seconds("self").unwrap() >= 0.0);
    }
}
