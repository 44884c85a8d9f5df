//! A `.sql` file run statement by statement from Rust, each statement with
//! the comment written above it — so the suite can run a benchmark file
//! quietly, and print a report's tables under the comments that say what
//! they are.
//!
//! Statements end with `;` at the end of a line (as every file under
//! `sql/` is written); `--` lines before a statement are its comment.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};

use datafusion_clip::formats::object_stores::ensure_object_store;

const IMAGE_FORMATS: [&str; 3] = ["IMAGEFOLDER", "WEBDATASET", "CIFAR"];

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStatement {
    /// The `--` lines written just above it, without the `--`.
    pub comment: String,
    /// The statement itself.
    pub sql: String,
}

impl ScriptStatement {
    /// Whether it returns rows to show (a query) rather than changing
    /// tables or writing files.
    pub fn is_query(&self) -> bool {
        let first = self
            .sql
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        first == "SELECT" || first == "WITH" || first == "VALUES"
    }
}

/// Split `script` into statements.
pub fn split_statements(script: &str) -> Vec<ScriptStatement> {
    let mut statements = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    let mut sql: Vec<&str> = Vec::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if sql.is_empty() {
            if let Some(text) = trimmed.strip_prefix("--") {
                comment.push(text.strip_prefix(' ').unwrap_or(text));
                continue;
            }
            if trimmed.is_empty() {
                // A blank line ends a comment that belongs to no statement
                // (a file header).
                comment.clear();
                continue;
            }
        }
        sql.push(line);
        if trimmed.ends_with(';') {
            statements.push(ScriptStatement {
                comment: comment.join("\n"),
                sql: sql.join("\n"),
            });
            comment.clear();
            sql.clear();
        }
    }
    if sql.iter().any(|l| !l.trim().is_empty()) {
        statements.push(ScriptStatement {
            comment: comment.join("\n"),
            sql: sql.join("\n"),
        });
    }
    statements
}

/// Run one statement and collect what it returns. A table on an object
/// store gets its store registered first, as `clip-sql` does.
pub async fn run_statement(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    for statement in DFParser::parse_sql(sql)? {
        // The image formats register their stores themselves (and their
        // locations may be globs or brace lists); CSV and Parquet do not.
        if let Statement::CreateExternalTable(create) = statement
            && !IMAGE_FORMATS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&create.file_type))
        {
            for location in &create.locations {
                let url = ListingTableUrl::parse(location)?;
                ensure_object_store(ctx.runtime_env().as_ref(), &url)?;
            }
        }
    }
    ctx.sql(sql).await?.collect().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_keep_the_comment_above_them() {
        let script = "-- File header.\n\n-- The first.\nCREATE TABLE a AS\nSELECT 1;\n\
                      SELECT *\nFROM a;\n-- Last, unterminated\nSELECT 2";
        let statements = split_statements(script);
        assert_eq!(
            statements,
            [
                ScriptStatement {
                    comment: "The first.".into(),
                    sql: "CREATE TABLE a AS\nSELECT 1;".into()
                },
                ScriptStatement {
                    comment: "".into(),
                    sql: "SELECT *\nFROM a;".into()
                },
                ScriptStatement {
                    comment: "Last, unterminated".into(),
                    sql: "SELECT 2".into()
                },
            ]
        );
        assert!(!statements[0].is_query());
        assert!(statements[1].is_query());
    }
}
