//! `strata import`

use std::fs::File;
use std::io::Read;

use anyhow::{Context, Result};
use strata_store::archive::decompress;
use strata_store::build::{create_image, NewImage};
use strata_store::Reference;

use crate::cli::ImportArgs;
use crate::printer::Printer;
use crate::settings::Settings;

/// Import a filesystem tar (file, or `-` for stdin; gzip/zstd/xz/bzip2 allowed).
pub fn run(s: &Settings, a: ImportArgs) -> Result<()> {
    let target = a.reference.as_deref().map(Reference::parse_tagged).transpose()?;
    let input: Box<dyn Read> = if a.source.starts_with("http://") || a.source.starts_with("https://") {
        let resp = ureq::get(&a.source).call().map_err(|e| anyhow::anyhow!("Get {:?}: {e}", a.source))?;
        Box::new(resp.into_body().into_reader())
    } else if a.source == "-" {
        // Read to the end before taking the store's lock (`strata export C |
        // strata import - …` on one store).
        // (The open handle reads on after the temporary name is gone.)
        Box::new(crate::commands::spool::stdin(&s.root)?.reopen().context("spooled input")?)
    } else {
        Box::new(File::open(&a.source).with_context(|| format!("open {}", a.source))?)
    };
    let store = s.store()?;
    store.check_writable()?;
    let mut tar = decompress(input).context("read the import source")?;
    // Docker's comment when no -m is given names the source (`-` for a file
    // or stdin, which its CLI uploads alike).
    let from =
        if a.source.starts_with("http://") || a.source.starts_with("https://") { a.source.as_str() } else { "-" };
    let comment = a.message.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| format!("Imported from {from}"));
    let spec = NewImage { comment: Some(comment), changes: a.change.clone(), tag: target, ..Default::default() };
    let id = create_image(&store, None, Some(&mut tar), &spec)?;
    Printer::stdout().line(&id.to_string())
}
