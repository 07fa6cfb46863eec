//! `smsroute check CONFIG`.

use std::path::Path;

use smsroute_config::Config;
use smsroute_routing::RouteTable;

/// Loads and compiles `path`; prints a one-line summary or returns the errors.
pub fn run(path: &Path) -> Result<(), String> {
    let (_, table) = load_config(path)?;
    let s = table.stats();
    println!(
        "ok: {} carriers, {} routes, {} prefixes, {} blocks, {} ported numbers; {} trie nodes, {} candidate lists, {} in memory",
        s.carriers,
        s.routes,
        s.prefixes,
        s.blocks,
        s.ported,
        s.nodes,
        s.lists,
        human_bytes(table.memory_bytes())
    );
    Ok(())
}

/// Parses, checks and compiles a configuration file, errors as `path:line:col: message`.
pub fn load_config(path: &Path) -> Result<(Config, RouteTable), String> {
    let config = Config::from_file(path).map_err(|e| e.to_string())?;
    let table = RouteTable::compile(&config).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((config, table))
}

fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
