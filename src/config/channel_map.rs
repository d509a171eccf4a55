//! The car's channel map: reads the DBC files the configuration names (imports first), its
//! frame definition files and TunerStudio INIs, checks the names that sources and
//! `compound_can` give, and compiles the map once. Every problem is located in the
//! configuration file, and so is every include or exclude pattern that has no effect (a
//! warning: the rest of the selection still applies).

use std::path::{Path, PathBuf};

use decoders::channel_map::{
    ChannelMap, ChannelMapError, DefinitionUse, IniUse, Selection, UnmatchedPattern,
};
use decoders::dbc::{DbcSource, DbcWarning, Parsed, parse_dbc_set};
use decoders::frame::{FrameDefinition, StreamFramer};
use decoders::ini::IniFile;

use super::locate::child;
use super::validate::Problems;
use super::{Config, ConfigError, ConfigErrors, SourceConfig, SourceKind};

/// The message (subgroup) name of a car's only INI; with several, each file's stem is used.
pub const INI_MESSAGE: &str = "OutputChannels";

/// A TunerStudio INI of the car, loaded.
#[derive(Debug, Clone)]
pub struct LoadedIni {
    /// The entry as written in `[car] ini` (what a source's `ini` key names).
    pub written: String,
    /// The message its output channels publish under (`OutputChannels`, or the file stem when
    /// the car has several INIs).
    pub message: String,
    /// The loaded file.
    pub file: IniFile,
}
impl Config {
    /// Loads the car's DBC files (imports first) and compiles the channel map, reporting every
    /// unreadable or malformed DBC, and every rename or override naming no signal, at once.
    pub fn load_channel_map(&self) -> Result<(ChannelMap, Vec<DbcWarning>), ConfigErrors> {
        // Profiles first: a DBC file of the car's own can then add to them.
        let mut files: Vec<(String, String)> = self
            .car
            .profiles
            .iter()
            .map(|profile| (format!("profile {}", profile.name), profile.dbc.to_owned()))
            .collect();
        let mut errors: Vec<ConfigError> = Vec::new();
        // The last car file's own parse (read for its imports).
        let mut last_parsed: Option<Parsed> = None;
        for path in &self.car.dbc {
            match load_with_imports(path, &mut files, 0) {
                Ok(parsed) => last_parsed = parsed.or(last_parsed),
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let parsed = match (files.len(), last_parsed) {
            // One file is its own set: parsed once, not again (the Civic's DBC was a third of a
            // one-frame replay's start-up instructions).
            (1, Some(parsed)) => parsed,
            _ => {
                let sources: Vec<DbcSource<'_>> = files
                    .iter()
                    .map(|(name, text)| DbcSource { name, text })
                    .collect();
                parse_dbc_set(&sources).map_err(ConfigError::from)?
            }
        };
        let definitions = self.load_definitions()?;
        let uses: Vec<DefinitionUse<'_>> = definitions
            .iter()
            .map(|definition| DefinitionUse {
                definition,
                can_id: self
                    .car
                    .compound_can
                    .iter()
                    .find(|(name, _)| *name == definition.name)
                    .map(|(_, id)| *id),
            })
            .collect();
        let inis = self.load_inis()?;
        let ini_uses: Vec<IniUse<'_>> = inis
            .iter()
            .map(|loaded| IniUse {
                message: &loaded.message,
                channels: &loaded.file.output_channels,
            })
            .collect();
        let compile = |selection: &Selection| {
            ChannelMap::compile_all(&parsed.dbc, &uses, &ini_uses, selection)
        };
        let map = self.compile_reporting_every_unknown_key(compile)?;
        self.check_lap_parameter(&map)?;
        Ok((map, parsed.warnings))
    }

    /// The `[laps]` parameter must be one the map publishes.
    fn check_lap_parameter(&self, map: &ChannelMap) -> Result<(), ConfigErrors> {
        let Some(laps) = &self.laps else {
            return Ok(());
        };
        if map
            .parameters()
            .iter()
            .any(|p| p.identifier == laps.parameter)
        {
            return Ok(());
        }
        let mut problems = Problems::default();
        problems.add(
            &format!("laps.{}", laps.key),
            format!(
                "{:?} is not a published parameter (see `ecu-bridge validate --list`)",
                laps.parameter
            ),
        );
        problems.into_result(&self.path, &self.locations, ())
    }

    /// Compiles with the configured selection. The compiler stops at the first rename or
    /// override naming no signal; that key is recorded, dropped, and the rest compiled again,
    /// so a good configuration compiles once and every unknown key is still reported at once.
    fn compile_reporting_every_unknown_key(
        &self,
        compile: impl Fn(&Selection) -> Result<ChannelMap, ChannelMapError>,
    ) -> Result<ChannelMap, ConfigErrors> {
        let mut selection = self.car.selection.clone();
        let mut errors = Vec::new();
        loop {
            match compile(&selection) {
                Ok(map) if errors.is_empty() => return Ok(map),
                Ok(_) => return Err(ConfigErrors(errors)),
                Err(ChannelMapError::UnknownSignal { section, key }) => {
                    let before = selection.renames.len() + selection.overrides.len();
                    match section {
                        "rename" => selection.renames.retain(|(k, _)| *k != key),
                        _ => selection.overrides.retain(|(k, _)| *k != key),
                    }
                    let dropped = selection.renames.len() + selection.overrides.len() < before;
                    let located = child(&format!("car.{section}"), &key);
                    errors.push(
                        self.map_error(&located, ChannelMapError::UnknownSignal { section, key }),
                    );
                    // Each round drops one key, so this ends; a key the compiler names but the
                    // selection lacks would loop, so it ends the search instead.
                    if !dropped {
                        return Err(ConfigErrors(errors));
                    }
                }
                Err(source) => {
                    // After an unknown key, a later error may only follow from dropping it (a
                    // rename that would have settled a duplicate name): report the keys alone.
                    if errors.is_empty() {
                        errors.push(self.map_error("car.application", source));
                    }
                    return Err(ConfigErrors(errors));
                }
            }
        }
    }

    /// Loads every `[car] ini` file (with `ini_settings` switched on) and checks that each
    /// TunerStudio source names one of them. An INI line the bridge needs but cannot read is
    /// an error at its file, line and column; everything else in the INI is a warning, logged.
    pub fn load_inis(&self) -> Result<Vec<LoadedIni>, ConfigErrors> {
        let settings: Vec<&str> = self.car.ini_settings.iter().map(String::as_str).collect();
        let several = self.car.ini.len() > 1;
        let mut errors = Vec::new();
        let mut loaded = Vec::new();
        for (written, path) in &self.car.ini {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(source) => {
                    errors.push(ConfigError::Read {
                        path: path.clone(),
                        source,
                    });
                    continue;
                }
            };
            let name = path.display().to_string();
            match IniFile::parse(&name, &text, &settings) {
                Ok((file, warnings)) => {
                    for warning in &warnings {
                        tracing::debug!(ini = %name, %warning, "INI line not used");
                    }
                    let (scalars, bits, computed) = file.output_channels.counts();
                    tracing::debug!(ini = %name, scalars, bits, computed,
                        warnings = warnings.len(), "TunerStudio INI loaded");
                    let message = ini_message(several, path);
                    loaded.push(LoadedIni {
                        written: written.clone(),
                        message,
                        file,
                    });
                }
                Err(error) => errors.push(error.into()),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let mut problems = Problems::default();
        for (index, source) in self.sources.iter().enumerate() {
            if source.poll.is_some()
                && let Err(message) = Self::ini_of(&loaded, source)
            {
                problems.add(&format!("source[{index}].protocol"), message);
            }
        }
        problems.into_result(&self.path, &self.locations, loaded)
    }

    /// The message a polled `source`'s blocks publish under (as [`Config::load_inis`] names
    /// it), without reading the INI; `None` for other sources or an unknown `ini`.
    pub fn polled_message(&self, source: &SourceConfig) -> Option<String> {
        let poll = source.poll.as_ref()?;
        let several = self.car.ini.len() > 1;
        let (_, path) = match (&poll.ini, self.car.ini.as_slice()) {
            (None, [only]) => only,
            (Some(name), all) => all.iter().find(|(written, _)| written == name)?,
            (None, _) => return None,
        };
        Some(ini_message(several, path))
    }

    /// The INI that polled `source` reads, among `inis` (from [`Config::load_inis`]).
    pub fn ini_of<'a>(
        inis: &'a [LoadedIni],
        source: &SourceConfig,
    ) -> Result<&'a LoadedIni, String> {
        let wanted = source.poll.as_ref().and_then(|poll| poll.ini.as_deref());
        let written: Vec<&str> = inis.iter().map(|i| i.written.as_str()).collect();
        match (wanted, inis) {
            (None, [only]) => Ok(only),
            (None, []) => Err("protocol = \"tunerstudio\" needs the ECU's INI in [car] ini".into()),
            (None, _) => Err(format!(
                "the car has several INIs; name this ECU's with ini = one of {written:?}"
            )),
            (Some(name), _) => inis
                .iter()
                .find(|i| i.written == name)
                .ok_or_else(|| format!("ini = {name:?} is not in [car] ini ({written:?})")),
        }
    }

    /// Reads and validates every frame definition, checks that the names sources and
    /// `compound_can` use exist, and that serial sources' definitions can cut a byte stream.
    fn load_definitions(&self) -> Result<Vec<FrameDefinition>, ConfigErrors> {
        let mut errors = Vec::new();
        let mut definitions = Vec::new();
        for path in &self.car.definitions {
            let loaded = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|text| {
                    let name = path.display().to_string();
                    Ok(FrameDefinition::parse(&name, &text)?)
                });
            match loaded {
                Ok(definition) => definitions.push(definition),
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let problems = self.check_definition_names(&definitions);
        problems.into_result(&self.path, &self.locations, definitions)
    }

    /// Problems with the definition names that sources and `compound_can` give.
    fn check_definition_names(&self, definitions: &[FrameDefinition]) -> Problems {
        let known: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
        let mut problems = Problems::default();
        for (index, source) in self.sources.iter().enumerate() {
            let Some(name) = &source.definition else {
                continue;
            };
            let key = format!("source[{index}].definition");
            match definitions.iter().find(|d| d.name == *name) {
                None => problems.add(&key, unknown_definition(name, &known)),
                Some(definition) => {
                    if let (SourceKind::Serial(_) | SourceKind::Tcp(_), Err(error)) =
                        (&source.kind, StreamFramer::new(&definition.framing))
                    {
                        problems.add(
                            &key,
                            format!("{name:?} cannot be read from a serial line: {error}"),
                        );
                    }
                }
            }
        }
        for (name, _) in &self.car.compound_can {
            if !known.contains(&name.as_str()) {
                problems.add(
                    &child("car.compound_can", name),
                    unknown_definition(name, &known),
                );
            }
        }
        problems
    }

    fn map_error(&self, key: &str, source: ChannelMapError) -> ConfigError {
        let (line, column) = self.locations.at(key);
        ConfigError::ChannelMap {
            path: self.path.clone(),
            line,
            column,
            source,
        }
    }
}

/// An `[car] include` or `exclude` pattern that selects or removes nothing, located.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternWarning {
    /// The configuration file.
    pub path: PathBuf,
    /// 1-based line of the pattern.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The pattern and why it has no effect.
    pub pattern: UnmatchedPattern,
}

impl std::fmt::Display for PatternWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (path, line, column) = (self.path.display(), self.line, self.column);
        let (list, index) = (self.pattern.list, self.pattern.index);
        write!(
            f,
            "{path}:{line}:{column}: [car.{list}[{index}]] {}",
            self.pattern
        )
    }
}

impl Config {
    /// The include/exclude patterns of this configuration that had no effect on `map` (compiled
    /// from it), each with the line it is written on.
    pub fn pattern_warnings(&self, map: &ChannelMap) -> Vec<PatternWarning> {
        map.unmatched_patterns()
            .iter()
            .map(|pattern| {
                let key = format!("car.{}[{}]", pattern.list, pattern.index);
                let (line, column) = self.locations.at(&key);
                PatternWarning {
                    path: self.path.clone(),
                    line,
                    column,
                    pattern: pattern.clone(),
                }
            })
            .collect()
    }
}

/// `OutputChannels` for a car's only INI, else the file's stem.
fn ini_message(several: bool, path: &Path) -> String {
    match (several, path.file_stem()) {
        (true, Some(stem)) => stem.to_string_lossy().into_owned(),
        _ => INI_MESSAGE.to_owned(),
    }
}

fn unknown_definition(name: &str, known: &[&str]) -> String {
    format!(
        "{name:?} is not the name of a frame definition in [car] definitions (loaded: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    )
}

/// Imports nest at most this deep (opendbc stubs import one level).
const MAX_IMPORT_DEPTH: usize = 4;

/// Reads `path`, after its imports, into `files`; returns its own parse (`None` when it was
/// already read or lies too deep).
fn load_with_imports(
    path: &Path,
    files: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<Option<Parsed>, ConfigError> {
    let name = path.display().to_string();
    if files.iter().any(|(loaded, _)| *loaded == name) || depth > MAX_IMPORT_DEPTH {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parsed = decoders::dbc::parse_dbc(&name, &text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    for import in &parsed.imports {
        load_with_imports(&base.join(import), files, depth + 1)?;
    }
    files.push((name, text));
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_definitions_join_the_car_and_the_names_using_them_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let definition = include_str!("../../decoders/definitions/example_serial_ecu.toml");
        std::fs::write(dir.path().join("ecu.toml"), definition).expect("definition");
        let good = r#"
[stream_api]
endpoint = "embedded"

[session]
data_source = "Bench"

[car]
application = "Bench"
definitions = ["ecu.toml"]

[[source]]
name = "tty"
kind = "serial"
device = "/dev/ttyUSB0"
definition = "example_serial_ecu"
"#;
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, good).expect("config");
        let (config, map, _) = Config::validate_file(&path).expect("valid");
        let SourceKind::Serial(serial) = &config.sources[0].kind else {
            panic!("serial")
        };
        assert_eq!(serial.slcan, None, "a native ECU needs no SLCAN set-up");
        assert_eq!(map.definitions().len(), 1);
        assert_eq!(map.parameters()[0].identifier, "rpm:Bench");

        let bad = format!(
            "{good}\n[[source]]\nname = \"net\"\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\ndefinition = \"f1_24_car_telemetry\"\n\n[car.compound_can]\nnothing = 0x5F0\n"
        );
        std::fs::write(&path, &bad).expect("config");
        let line_of = |start: &str| {
            1 + bad
                .lines()
                .position(|l| l.starts_with(start))
                .expect("line")
        };
        let errors = Config::validate_file(&path)
            .expect_err("two unknown names")
            .0;
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        let source_at = format!(
            ":{}:1: [source[1].definition]",
            line_of("definition = \"f1")
        );
        let compound_at = format!(":{}:1: [car.compound_can.nothing]", line_of("nothing"));
        assert!(
            messages[0].contains(&source_at)
                && messages[0].contains("\"f1_24_car_telemetry\" is not the name")
                && messages[1].contains(&compound_at),
            "{messages:#?}"
        );

        let both = good.replace(
            "definition = \"example",
            "can_bitrate = 500000\ndefinition = \"example",
        );
        let error = Config::parse(&path, &both).expect_err("bitrate and definition");
        assert!(
            error
                .to_string()
                .contains("[source[0].can_bitrate] applies to SLCAN"),
            "{error}"
        );
        let neither = good.replace("definitions = [\"ecu.toml\"]", "");
        let error = Config::parse(&path, &neither).expect_err("no channel map");
        assert!(
            error.to_string().contains("[car.dbc] list at least one"),
            "{error}"
        );
    }

    #[test]
    fn every_unknown_rename_and_override_is_reported_at_its_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dbc = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/test-car/test_car.dbc");
        let text = format!(
            "[stream_api]\nendpoint = \"embedded\"\n\n[session]\ndata_source = \"TestCar\"\n\n[car]\napplication = \"Test\"\ndbc = [{dbc:?}]\n\n[car.rename]\n\"ENGINE.RPM\" = \"rpm\"\n\"ENGINE.NO_SUCH\" = \"nope\"\n\"CHASSIS.NOR_THIS\" = \"nor\"\n\n[car.override.\"TYRES.MISSING\"]\nunit = \"bar\"\n"
        );
        let path = dir.path().join("car.toml");
        std::fs::write(&path, &text).expect("config");
        let errors = Config::validate_file(&path)
            .expect_err("three unknown keys")
            .0;
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        for (line, key) in [
            (13, "\"ENGINE.NO_SUCH\" in [rename]"),
            (14, "\"CHASSIS.NOR_THIS\" in [rename]"),
            (16, "\"TYRES.MISSING\" in [override]"),
        ] {
            let at = format!(":{line}:1: [car] {key}");
            assert!(
                messages.iter().any(|m| m.contains(&at)),
                "{at} in {messages:#?}"
            );
        }

        let good = text
            .replace("\"ENGINE.NO_SUCH\"", "\"ENGINE.COOLANT\"")
            .replace("\"CHASSIS.NOR_THIS\"", "\"CHASSIS.SPEED\"")
            .replace("TYRES.MISSING", "TYRES.PRESSURE");
        std::fs::write(&path, good).expect("config");
        let (_, map, _) = Config::validate_file(&path).expect("valid");
        assert!(
            map.parameters().iter().any(|p| p.identifier == "nor:Test"),
            "renames apply once every key is known"
        );
    }

    #[test]
    fn a_good_selection_compiles_once_and_each_unknown_key_costs_one_more() {
        let dbc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/test-car/test_car.dbc");
        let dbc_text = std::fs::read_to_string(&dbc_path).expect("test car DBC");
        let parsed = parse_dbc_set(&[DbcSource {
            name: "test_car.dbc",
            text: &dbc_text,
        }])
        .expect("valid DBC");
        let compiles = |rename: &str| {
            let text = format!(
                "[stream_api]\nendpoint = \"embedded\"\n[session]\ndata_source = \"T\"\n[car]\napplication = \"T\"\ndbc = [\"x.dbc\"]\n[car.rename]\n{rename}\n"
            );
            let config = Config::parse(Path::new("car.toml"), &text).expect("valid values");
            let calls = std::cell::Cell::new(0);
            let result = config.compile_reporting_every_unknown_key(|selection| {
                calls.set(calls.get() + 1);
                ChannelMap::compile_with(&parsed.dbc, &[], selection)
            });
            (calls.get(), result.err().map_or(0, |errors| errors.0.len()))
        };
        assert_eq!(compiles("\"ENGINE.RPM\" = \"rpm\""), (1, 0));
        assert_eq!(
            compiles("\"ENGINE.RPM\" = \"rpm\"\n\"ENGINE.X\" = \"x\"\n\"CHASSIS.Y\" = \"y\""),
            (3, 2)
        );
    }
}
