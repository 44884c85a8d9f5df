//! The one way `clip-sql` runs SQL text: the shell's `-f`, `-c` and REPL,
//! the suite's benchmark files and the report's SQL files all split, plan
//! and run statements here, so a file behaves the same in each.
//!
//! - Splitting: at the semicolons the SQL tokenizer finds (never one in a
//!   string, identifier or comment). Each statement keeps the `--` lines
//!   written just above it, which the report shows as the table's heading.
//! - Planning: by the session, statement by statement. A `CREATE EXTERNAL
//!   TABLE` of an image format (`IMAGEFOLDER`, `WEBDATASET`, `CIFAR`) goes
//!   to its factory with its `OPTIONS` untouched (its factory checks them
//!   and registers its own object store, globs and brace lists included).
//!   Any other `CREATE EXTERNAL TABLE` or `COPY ... TO` gets the store of
//!   its location first, as datafusion-cli gives it: s3://, gs://, oss://
//!   and cos:// built from the statement's `aws.*` / `gcp.*` options and
//!   the environment, other schemes (https://, az://, local files) from the
//!   environment.
//! - Running: the caller collects the rows ([`run_statement`]) or prints
//!   them with datafusion-cli's print options ([`print_statement`],
//!   [`print_script`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::config::{ConfigFileType, TableOptions};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::object_store::ObjectStore;
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::{ExecutionPlanProperties, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as ParsedStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};
use datafusion_cli::cli_context::CliSessionContext;
use datafusion_cli::object_storage::{
    AwsOptions, GcpOptions, get_cos_object_store_builder, get_gcs_object_store_builder,
    get_oss_object_store_builder, get_s3_object_store_builder,
};
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::{MaxRows, PrintOptions};
use futures::StreamExt;

/// One statement of a script.
#[derive(Debug, Clone)]
pub struct ScriptStatement {
    /// The `--` lines written just above it, without the `--`.
    pub comment: String,
    /// The statement as written, with its `;` when it has one.
    pub sql: String,
    parsed: ParsedStatement,
}

impl ScriptStatement {
    /// Whether it returns rows to show (a `SELECT`, `WITH` or `VALUES`
    /// query) rather than changing tables or writing files.
    pub fn is_query(&self) -> bool {
        matches!(&self.parsed, ParsedStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_)))
    }

    /// The table a `CREATE TABLE ... AS` makes, as written.
    pub fn created_table(&self) -> Option<String> {
        match &self.parsed {
            ParsedStatement::Statement(s) => match s.as_ref() {
                SqlStatement::CreateTable(create) => Some(create.name.to_string()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The SQL dialect `ctx` parses with (`datafusion.sql_parser.dialect`).
fn dialect(ctx: &SessionContext) -> Result<Box<dyn Dialect>> {
    let name = ctx.state().config().options().sql_parser.dialect;
    dialect_from_str(name)
        .ok_or_else(|| DataFusionError::Plan(format!("unsupported SQL dialect: {name}")))
}

/// Split `script` into its statements, parsed in `ctx`'s dialect. Fails,
/// before anything runs, if any statement does not parse.
pub fn split_script(ctx: &SessionContext, script: &str) -> Result<Vec<ScriptStatement>> {
    let dialect = dialect(ctx)?;
    let mut statements = Vec::new();
    for piece in statement_texts(script, dialect.as_ref())? {
        let mut parsed = DFParser::parse_sql_with_dialect(piece.sql, dialect.as_ref())?;
        let (Some(statement), true) = (parsed.pop_front(), parsed.is_empty()) else {
            return exec_err!("cannot split into statements: {}", piece.sql);
        };
        statements.push(ScriptStatement {
            comment: piece.comment,
            sql: piece.sql.to_string(),
            parsed: statement,
        });
    }
    Ok(statements)
}

/// A statement's text and the comment above it, before parsing.
#[derive(Debug, PartialEq, Eq)]
struct StatementText<'a> {
    comment: String,
    sql: &'a str,
}

/// The statements of `sql`: split at the semicolons the SQL tokenizer
/// finds, each from its first token to its `;` (kept), with the `--`
/// lines right above it (a blank line between them and the statement
/// means they belong to no statement, as a file's header).
fn statement_texts<'a>(sql: &'a str, dialect: &dyn Dialect) -> Result<Vec<StatementText<'a>>> {
    let tokens = Tokenizer::new(dialect, sql)
        .tokenize_with_location()
        .map_err(|e| DataFusionError::SQL(Box::new(e.into()), None))?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // Locations count lines and characters from 1.
    let byte_offset = |location: Location| -> usize {
        let start = line_starts[(location.line as usize).saturating_sub(1)];
        sql[start..]
            .char_indices()
            .nth((location.column as usize).saturating_sub(1))
            .map_or(sql.len(), |(i, _)| start + i)
    };
    let mut texts = Vec::new();
    // Where the text after the previous statement starts, and where the
    // current statement's first token is.
    let mut gap_start = 0;
    let mut first_token: Option<usize> = None;
    for token in &tokens {
        match &token.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => {
                let end = byte_offset(token.span.start) + 1;
                if let Some(begin) = first_token.take() {
                    texts.push(StatementText {
                        comment: comment_above(&sql[gap_start..begin], gap_start == 0),
                        sql: &sql[begin..end],
                    });
                }
                gap_start = end;
            }
            _ => {
                if first_token.is_none() {
                    first_token = Some(byte_offset(token.span.start));
                }
            }
        }
    }
    if let Some(begin) = first_token {
        texts.push(StatementText {
            comment: comment_above(&sql[gap_start..begin], gap_start == 0),
            sql: sql[begin..].trim_end(),
        });
    }
    Ok(texts)
}

/// The `--` lines at the end of `gap` (the text between two statements),
/// up to the first blank or other line. The gap's first line is the rest
/// of the previous statement's last line, never a comment above the next,
/// unless the gap starts the script.
fn comment_above(gap: &str, starts_script: bool) -> String {
    let mut lines: Vec<&str> = gap.split('\n').collect();
    // The last piece is what precedes the statement on its own line.
    lines.pop();
    if !starts_script && !lines.is_empty() {
        lines.remove(0);
    }
    let mut comment = Vec::new();
    for line in lines.iter().rev() {
        match line.trim().strip_prefix("--") {
            Some(text) => comment.push(text.strip_prefix(' ').unwrap_or(text).trim_end()),
            None => break,
        }
    }
    comment.reverse();
    comment.join("\n")
}

/// Plan `statement` in `ctx`, registering the object store its location
/// needs first (see the module documentation). The frame runs when
/// collected or streamed; DDL, `SET` and the like take effect here.
pub async fn plan_statement(
    ctx: &SessionContext,
    statement: &ScriptStatement,
) -> Result<DataFrame> {
    let plan = ctx
        .state()
        .statement_to_plan(statement.parsed.clone())
        .await?;
    match &plan {
        LogicalPlan::Ddl(DdlStatement::CreateExternalTable(create))
            if !datafusion_clip::is_image_format(&create.file_type) =>
        {
            let format = config_file_type(&create.file_type);
            for location in &create.locations {
                register_store(ctx, location, &create.options, format.clone()).await?;
            }
        }
        LogicalPlan::Copy(copy) => {
            let format = config_file_type(&copy.file_type.get_ext());
            register_store(ctx, &copy.output_url, &copy.options, format).await?;
        }
        _ => {}
    }
    ctx.execute_logical_plan(plan).await
}

/// Plan and run `statement`, collecting what it returns.
pub async fn run_statement(
    ctx: &SessionContext,
    statement: &ScriptStatement,
) -> Result<Vec<RecordBatch>> {
    plan_statement(ctx, statement).await?.collect().await
}

/// Split `script` and print each statement's result in turn, stopping at
/// the first that fails (a broken benchmark file exits non-zero rather
/// than printing an error and carrying on).
pub async fn print_script(
    ctx: &SessionContext,
    script: &str,
    print_options: &PrintOptions,
) -> Result<()> {
    for statement in split_script(ctx, script)? {
        print_statement(ctx, &statement, print_options).await?;
    }
    Ok(())
}

/// Plan and run `statement`, printing what it returns as datafusion-cli
/// prints it: at most `--maxrows` rows in a table (every row of `SHOW`,
/// `EXPLAIN` and `DESCRIBE`), an unbounded query streamed as it comes.
pub async fn print_statement(
    ctx: &SessionContext,
    statement: &ScriptStatement,
    print_options: &PrintOptions,
) -> Result<()> {
    let started = Instant::now();
    let frame = plan_statement(ctx, statement).await?;
    let mut print_options = print_options.clone();
    let shows_everything = matches!(
        frame.logical_plan(),
        LogicalPlan::Explain(_) | LogicalPlan::DescribeTable(_) | LogicalPlan::Analyze(_)
    ) || matches!(&statement.parsed, ParsedStatement::Statement(s)
            if matches!(s.as_ref(), SqlStatement::ShowVariable { .. }));
    if shows_everything {
        print_options.maxrows = MaxRows::Unlimited;
    }
    let task_ctx = ctx.task_ctx();
    let format_options = task_ctx.session_config().options().format.clone();
    let plan = frame.create_physical_plan().await?;
    if plan.boundedness().is_unbounded() {
        if plan.pipeline_behavior() == EmissionType::Final {
            return exec_err!(
                "the query can give its result only once its source ends, but the source is unbounded"
            );
        }
        let stream = execute_stream(plan, task_ctx)?;
        return print_options
            .print_stream(stream, started, &format_options)
            .await;
    }
    if print_options.format == PrintFormat::Automatic {
        print_options.format = PrintFormat::Table;
    }
    let schema = plan.schema();
    let max_rows = match print_options.maxrows {
        MaxRows::Unlimited => usize::MAX,
        MaxRows::Limited(n) => n,
    };
    // What is kept for printing counts against the session's memory pool.
    let reservation = MemoryConsumer::new("clip-sql output").register(task_ctx.memory_pool());
    let mut stream = execute_stream(plan, task_ctx)?;
    let mut kept = Vec::new();
    let mut row_count = 0_usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if row_count < max_rows {
            reservation.try_grow(batch.get_array_memory_size())?;
            kept.push(batch.clone());
        }
        row_count += batch.num_rows();
    }
    print_options.print_batches(schema, &kept, started, row_count, &format_options)
}

fn config_file_type(file_type: &str) -> Option<ConfigFileType> {
    match file_type.to_ascii_lowercase().as_str() {
        "csv" => Some(ConfigFileType::CSV),
        "json" => Some(ConfigFileType::JSON),
        "parquet" => Some(ConfigFileType::PARQUET),
        _ => None,
    }
}

/// Register the object store `location` needs in `ctx`, unless it is
/// local. Cloud stores are built from the statement's options (`aws.*`,
/// `gcp.*`) over the environment's credentials, as datafusion-cli builds
/// them; https:// and az:// from the environment (the library's stores).
async fn register_store(
    ctx: &SessionContext,
    location: &str,
    options: &HashMap<String, String>,
    format: Option<ConfigFileType>,
) -> Result<()> {
    let table_url = ListingTableUrl::parse(location)?;
    let scheme = table_url.scheme().to_string();
    let url = table_url.get_url().clone();
    // Makes `aws.*` and `gcp.*` options valid for the table's factory too.
    ctx.register_table_options_extension_from_scheme(&scheme);
    let mut table_options: TableOptions = ctx.state().default_table_options();
    if let Some(format) = format {
        table_options.set_config_format(format);
    }
    table_options.alter_with_string_hash_map(options)?;
    let aws = || {
        table_options
            .extensions
            .get::<AwsOptions>()
            .ok_or_else(|| DataFusionError::Plan(format!("no aws.* options for {scheme}://")))
    };
    let store: Arc<dyn ObjectStore> = match scheme.as_str() {
        "s3" => Arc::new(
            get_s3_object_store_builder(&url, aws()?, false)
                .await?
                .build()?,
        ),
        "oss" => Arc::new(get_oss_object_store_builder(&url, aws()?)?.build()?),
        "cos" => Arc::new(get_cos_object_store_builder(&url, aws()?)?.build()?),
        "gs" | "gcs" => {
            let gcp = table_options
                .extensions
                .get::<GcpOptions>()
                .ok_or_else(|| {
                    DataFusionError::Plan(format!("no gcp.* options for {scheme}://"))
                })?;
            Arc::new(get_gcs_object_store_builder(&url, gcp)?.build()?)
        }
        _ => return datafusion_clip::ensure_object_store(ctx.runtime_env().as_ref(), &table_url),
    };
    ctx.register_object_store(&url, store);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    fn texts(sql: &str) -> Vec<(String, String)> {
        statement_texts(sql, &GenericDialect {})
            .unwrap()
            .into_iter()
            .map(|t| (t.comment, t.sql.to_string()))
            .collect()
    }

    #[test]
    fn statements_split_at_semicolons_outside_strings_and_comments() {
        let sql = "SELECT ';' AS \"a;b\"; -- c;d\nSELECT 'é' /* ; */ ;\n\nSELECT 3";
        assert_eq!(
            texts(sql),
            [
                (String::new(), "SELECT ';' AS \"a;b\";".to_string()),
                (String::new(), "SELECT 'é' /* ; */ ;".to_string()),
                (String::new(), "SELECT 3".to_string()),
            ]
        );
    }

    #[test]
    fn statements_keep_the_comment_right_above_them() {
        let script = "-- File header.\n\n-- The first.\n--  indented\nCREATE TABLE a AS\nSELECT 1;\n\
                      SELECT *\nFROM a; -- not the next one's\n-- Last, unterminated\nSELECT 2\n";
        assert_eq!(
            texts(script),
            [
                (
                    "The first.\n indented".to_string(),
                    "CREATE TABLE a AS\nSELECT 1;".to_string()
                ),
                (String::new(), "SELECT *\nFROM a;".to_string()),
                ("Last, unterminated".to_string(), "SELECT 2".to_string()),
            ]
        );
    }

    #[test]
    fn a_script_of_comments_only_has_no_statements() {
        assert!(texts("-- nothing\n\n/* here */\n").is_empty());
        assert!(texts(";;").is_empty());
    }

    #[test]
    fn statements_know_queries_and_the_tables_they_create() {
        let ctx = SessionContext::new();
        let statements = split_script(
            &ctx,
            "CREATE TABLE t AS SELECT 1 AS x; WITH w AS (SELECT 1) SELECT * FROM w; \
             VALUES (1); SET datafusion.catalog.information_schema = true",
        )
        .unwrap();
        let queries: Vec<bool> = statements.iter().map(ScriptStatement::is_query).collect();
        assert_eq!(queries, [false, true, true, false]);
        assert_eq!(statements[0].created_table().as_deref(), Some("t"));
        assert_eq!(statements[1].created_table(), None);
    }

    #[test]
    fn a_statement_that_does_not_parse_fails_the_whole_script() {
        let ctx = SessionContext::new();
        let err = split_script(&ctx, "SELECT 1; SELEC 2; SELECT 3").unwrap_err();
        assert!(err.to_string().contains("SELEC"), "{err}");
    }
}
