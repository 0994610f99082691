//! `imgbuild schema`: print the manifest's JSON Schema.

use crate::error::Error;
use crate::manifest::schema::Manifest;
use crate::printer::Printer;

/// The manifest's JSON Schema (draft-07, which taplo and editors read).
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<Manifest>();
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    text.push('\n');
    text
}

/// Prints the schema.
pub fn run(printer: Printer) -> Result<(), Error> {
    printer.result(&json_schema()).map_err(Error::Output)
}
