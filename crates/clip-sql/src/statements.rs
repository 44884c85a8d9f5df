//! How the shell runs SQL text: as datafusion-cli does, statement by
//! statement, except a `CREATE EXTERNAL TABLE ... STORED AS` IMAGEFOLDER,
//! WEBDATASET or CIFAR, which the session plans itself.
//!
//! datafusion-cli checks a `CREATE EXTERNAL TABLE`'s `OPTIONS` against the
//! options of DataFusion's own file formats before the table's factory sees
//! them, so `OPTIONS ('skip_unreadable' 'true')` failed there with "Specify
//! a format for TableOptions" though the factory takes it. Planned by the
//! session, the options reach the factory, which checks them itself.

use std::time::Instant;

use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::dialect_from_str;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};
use datafusion_cli::exec;
use datafusion_cli::print_options::PrintOptions;
use datafusion_clip::formats::TABLE_FORMATS;

/// Run `sql`, one or more statements, stopping at the first that fails.
pub async fn run_sql(ctx: &SessionContext, sql: &str, print_options: &PrintOptions) -> Result<()> {
    let dialect_name = ctx.state().config().options().sql_parser.dialect;
    let dialect = dialect_from_str(dialect_name)
        .ok_or_else(|| DataFusionError::Plan(format!("unsupported SQL dialect: {dialect_name}")))?;
    // Text without image-table DDL goes to datafusion-cli unchanged.
    let statements = DFParser::parse_sql_with_dialect(sql, dialect.as_ref())?;
    if !statements.iter().any(is_image_table_ddl) {
        return exec::exec_from_commands(ctx, vec![sql.to_string()], print_options).await;
    }
    for text in split_statements(sql, dialect.as_ref())? {
        let mut parsed = DFParser::parse_sql_with_dialect(text, dialect.as_ref())?;
        match (parsed.pop_front(), parsed.is_empty()) {
            (Some(statement), true) if is_image_table_ddl(&statement) => {
                let started = Instant::now();
                let plan = ctx.state().statement_to_plan(statement).await?;
                let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
                let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| {
                    std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty())
                });
                let options = ctx.state().config().options().format.clone();
                print_options.print_batches(schema, &batches, started, 0, &options)?;
            }
            (None, _) => {}
            _ => exec::exec_from_commands(ctx, vec![text.to_string()], print_options).await?,
        }
    }
    Ok(())
}

/// A `CREATE EXTERNAL TABLE` of one of this project's image formats.
fn is_image_table_ddl(statement: &Statement) -> bool {
    matches!(statement, Statement::CreateExternalTable(create)
        if TABLE_FORMATS.iter().any(|f| f.eq_ignore_ascii_case(&create.file_type)))
}

/// The text of each statement of `sql`, split at the semicolons the SQL
/// tokenizer finds (never one inside a string, identifier or comment),
/// each as written.
fn split_statements<'a>(
    sql: &'a str,
    dialect: &dyn datafusion::sql::sqlparser::dialect::Dialect,
) -> Result<Vec<&'a str>> {
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
    let mut pieces = Vec::new();
    let mut begin = 0;
    for token in tokens {
        if token.token == Token::SemiColon {
            let end = byte_offset(token.span.start);
            pieces.push(&sql[begin..end]);
            begin = end + 1;
        }
    }
    pieces.push(&sql[begin..]);
    pieces.retain(|piece| !piece.trim().is_empty());
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    #[test]
    fn statements_split_at_semicolons_outside_strings_and_comments() {
        let sql = "SELECT ';' AS \"a;b\"; -- c;d\nSELECT 'é' /* ; */ ;\n\nSELECT 3";
        let pieces = split_statements(sql, &GenericDialect {}).unwrap();
        assert_eq!(
            pieces,
            [
                "SELECT ';' AS \"a;b\"",
                " -- c;d\nSELECT 'é' /* ; */ ",
                "\n\nSELECT 3"
            ]
        );
    }

    #[test]
    fn only_image_formats_are_planned_here() {
        let parse = |sql: &str| {
            DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
                .unwrap()
                .pop_front()
                .unwrap()
        };
        assert!(is_image_table_ddl(&parse(
            "CREATE EXTERNAL TABLE t STORED AS imagefolder LOCATION '/x/'"
        )));
        assert!(!is_image_table_ddl(&parse(
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/x.csv'"
        )));
        assert!(!is_image_table_ddl(&parse("SELECT 1")));
    }
}
