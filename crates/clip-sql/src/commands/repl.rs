//! The interactive shell: datafusion-cli's line editor, helper (completion,
//! hints, highlighting, multi-line input) and backslash commands, around
//! our own loop so that every statement runs through
//! `clip_sql::sql_runner`, as `-f` files and the suite's do.
//!
//! Ctrl-C drops the statement that is running and stops its CLIP work at
//! the next forward pass; the prompt comes back at once.

use datafusion::prelude::SessionContext;
use datafusion_cli::command::{Command, OutputFormat};
use datafusion_cli::helper::CliHelper;
use datafusion_cli::print_options::PrintOptions;
use rustyline::Editor;
use rustyline::error::ReadlineError;

use super::interrupts::Interrupts;
use clip_sql::sql_runner::print_script;

/// Where the REPL keeps its history, as datafusion-cli does: the current
/// directory.
const HISTORY_FILE: &str = ".history";

/// Read, run and print until `\q` or end of input.
pub async fn run_repl(
    ctx: &SessionContext,
    print_options: &mut PrintOptions,
) -> rustyline::Result<()> {
    let dialect = |ctx: &SessionContext| ctx.state().config().options().sql_parser.dialect;
    let mut interrupts = Interrupts::listen()?;
    let mut editor = Editor::new()?;
    editor.set_helper(Some(CliHelper::new(&dialect(ctx), print_options.color)));
    editor.load_history(HISTORY_FILE).ok();
    loop {
        match editor.readline("> ") {
            Ok(line) if line.starts_with('\\') => {
                editor.add_history_entry(line.trim_end())?;
                let command = line.split_whitespace().collect::<Vec<_>>().join(" ");
                match command[1..].parse::<Command>() {
                    Ok(Command::Quit) => break,
                    Ok(Command::OutputFormat(Some(format))) => {
                        match format.parse::<OutputFormat>() {
                            Ok(format) => {
                                if let Err(e) = format.execute(print_options) {
                                    eprintln!("{e}");
                                }
                            }
                            Err(_) => eprintln!(
                                "'\\{}' is not a valid command, you can use '\\?' to see all commands",
                                &line[1..]
                            ),
                        }
                    }
                    Ok(Command::OutputFormat(None)) => {
                        println!("Output format is {:?}.", print_options.format);
                    }
                    Ok(command) => {
                        if let Err(e) = command.execute(ctx, print_options).await {
                            eprintln!("{e}");
                        }
                    }
                    Err(_) => eprintln!(
                        "'\\{}' is not a valid command, you can use '\\?' to see all commands",
                        &line[1..]
                    ),
                }
            }
            Ok(line) => {
                editor.add_history_entry(line.trim_end())?;
                interrupts.forget_earlier();
                tokio::select! {
                    result = print_script(ctx, &line, print_options) => {
                        if let Err(e) = result {
                            eprintln!("{e}");
                        }
                    }
                    _ = interrupts.next() => {
                        // Dropping the statement's future stops its CLIP work
                        // before the next forward pass (query_cancel). The
                        // shell runs one statement at a time, so the
                        // process-wide stop also catches calls that rewrite
                        // cannot mark, and stops nobody else's work.
                        datafusion_clip::cancel_running_work();
                        println!("^C");
                    }
                }
                // `SET datafusion.sql_parser.dialect` may have changed it.
                if let Some(helper) = editor.helper_mut() {
                    helper.set_dialect(&dialect(ctx));
                }
            }
            Err(ReadlineError::Interrupted) => {
                println!("^C");
                if let Some(helper) = editor.helper() {
                    helper.reset_hint();
                }
            }
            Err(ReadlineError::Eof) => {
                println!("\\q");
                break;
            }
            Err(e) => {
                eprintln!("cannot read the next line: {e}");
                break;
            }
        }
    }
    editor.save_history(HISTORY_FILE)
}
