//! The sinks the user asked for: the terminal (unless a format took
//! standard output with `-`), then `-oN`, `-oX`, `-oG` and `-oJ` files
//! (`-oA` has set the first three), created or, with `--append-output`,
//! appended to.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};

use anyhow::Context;
use portolan_output::grepable::GrepableSink;
use portolan_output::jsonl::JsonLinesSink;
use portolan_output::normal::NormalSink;
use portolan_output::xml::XmlSink;
use portolan_output::{OutputOptions, Sink};

use crate::args::{Config, OutputFile};

fn open_output(file: &OutputFile, append: bool) -> anyhow::Result<Box<dyn Write>> {
    Ok(match &file.path {
        None => Box::new(io::stdout()),
        Some(path) => {
            let f: File = if append {
                OpenOptions::new().create(true).append(true).open(path)
            } else {
                File::create(path)
            }
            .with_context(|| format!("cannot open output file {}", path.display()))?;
            Box::new(BufWriter::new(f))
        }
    })
}

/// Every sink of this run, in a fixed order.
pub fn build_sinks(config: &Config, options: OutputOptions) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    type Make = fn(Box<dyn Write>, OutputOptions) -> Box<dyn Sink>;
    let formats: [(&Option<OutputFile>, Make); 4] = [
        (&config.normal_out, |w, o| Box::new(NormalSink::new(w, o))),
        (&config.xml_out, |w, o| Box::new(XmlSink::new(w, o))),
        (&config.grep_out, |w, o| Box::new(GrepableSink::new(w, o))),
        (&config.json_out, |w, o| Box::new(JsonLinesSink::new(w, o))),
    ];
    let stdout_taken = formats
        .iter()
        .any(|(f, _)| f.as_ref().is_some_and(|f| f.path.is_none()));
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if !stdout_taken {
        sinks.push(Box::new(NormalSink::new(io::stdout(), options)));
    }
    for (file, make) in formats {
        if let Some(file) = file {
            sinks.push(make(open_output(file, config.append)?, options));
        }
    }
    Ok(sinks)
}
