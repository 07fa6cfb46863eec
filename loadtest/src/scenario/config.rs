//! Where a scenario's route table comes from: a file, inline text, or the generated table.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use smsroute_config::Config;

use super::{GenerateError, Problem};

/// Where the route table comes from: exactly one of the three.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSource {
    /// A configuration file, relative to the scenario file.
    pub path: Option<PathBuf>,
    /// The configuration itself.
    pub inline: Option<String>,
    /// The generated table of the default scenario.
    pub generate: Option<Generate>,
}

/// A generated table: `uk-alpha` and `uk-beta` (the cheaper) serve UK prefixes under 447,
/// `fr-gamma` serves French ones under 336; `prefixes` in all, every carrier at `tps`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Distinct prefixes (at least 10).
    pub prefixes: u32,
    /// Each carrier's contracted segments per second.
    pub tps: u32,
    /// Each carrier's in-flight window. Default 4096.
    #[serde(default = "default_window")]
    pub window: u32,
    /// TOML appended to the generated configuration (a `[retry]` or `[limits]` table).
    #[serde(default)]
    pub append: String,
}

fn default_window() -> u32 {
    4096
}

impl ConfigSource {
    /// The route table's text; `item` names it in errors.
    pub(super) fn text(&self, base: &Path, item: &str) -> Result<String, Problem> {
        match (&self.path, &self.inline, &self.generate) {
            (Some(path), None, None) => {
                std::fs::read_to_string(base.join(path)).map_err(|e| Problem::Config {
                    item: item.to_string(),
                    error: smsroute_config::ConfigError {
                        path: base.join(path).display().to_string(),
                        diagnostics: vec![smsroute_config::Diagnostic {
                            line: 1,
                            col: 1,
                            message: format!("cannot read file: {e}"),
                        }],
                    },
                })
            }
            (None, Some(text), None) => Ok(text.clone()),
            (None, None, Some(g)) => Ok(g.text()),
            _ => Err(Problem::ConfigSource {
                item: item.to_string(),
            }),
        }
    }

    /// The route table; `item` names it in errors (`config`, `faults[2].config`).
    pub(super) fn load(&self, base: &Path, item: &str) -> Result<Config, Problem> {
        let invalid = |error| Problem::Config {
            item: item.to_string(),
            error,
        };
        match (&self.path, &self.inline, &self.generate) {
            (Some(path), None, None) => Config::from_file(&base.join(path)).map_err(invalid),
            (None, Some(text), None) => Config::parse(text, item).map_err(invalid),
            (None, None, Some(g)) => g.config().map_err(|error| Problem::Generate {
                item: item.to_string(),
                error,
            }),
            _ => Err(Problem::ConfigSource {
                item: item.to_string(),
            }),
        }
    }
}

impl Generate {
    /// The generated configuration.
    pub fn config(&self) -> Result<Config, GenerateError> {
        if !(10..=100_000).contains(&self.prefixes) {
            return Err(GenerateError::Prefixes(self.prefixes));
        }
        Ok(Config::parse(&self.text(), "generated")?)
    }

    /// The generated configuration's text.
    fn text(&self) -> String {
        let mut text = String::new();
        for id in ["uk-alpha", "uk-beta", "fr-gamma"] {
            text += &format!(
                "[[carriers]]\nid = \"{id}\"\ntps = {}\nwindow = {}\n\n",
                self.tps, self.window
            );
        }
        // Two thirds UK (both UK carriers price each), one third France.
        let uk = self.prefixes * 2 / 3;
        for i in 0..uk {
            let prefix = format!("447{:05}", i * 7);
            let (alpha, beta) = (3_500 + i % 300, 3_000 + i % 250);
            text += &format!(
                "[[routes]]\nprefix = \"{prefix}\"\ncarrier = \"uk-alpha\"\ncost = 0.{alpha:06}\n\n\
                 [[routes]]\nprefix = \"{prefix}\"\ncarrier = \"uk-beta\"\ncost = 0.{beta:06}\n\n"
            );
        }
        for i in 0..self.prefixes - uk {
            text += &format!(
                "[[routes]]\nprefix = \"336{:05}\"\ncarrier = \"fr-gamma\"\ncost = 0.{:06}\n\n",
                i * 7,
                5_000 + i % 400
            );
        }
        text += "\n";
        text += &self.append;
        text
    }
}
