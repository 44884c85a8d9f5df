//! The SQL the README shows runs as written: every ```sql block, in order,
//! in one session, with the tiny models standing in for `ViT-B/32` and
//! `RN50` and small folders for the tables it names. A renamed function or
//! setting, or an example that no longer parses, fails here rather than in a
//! reader's first session.

use datafusion::sql::parser::DFParser;

use crate::common::*;

/// The ```sql blocks of a Markdown file, with the line each starts on.
fn sql_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in markdown.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, fence) if fence.starts_with("```sql") => {
                current = Some((number + 1, String::new()));
            }
            (Some(_), fence) if fence.starts_with("```") => blocks.extend(current.take()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_sql_runs_as_written() {
    let pets = pets_folder();
    let resnet = format!("{}/tests/fixtures/models/open_clip_resnet_tiny", repo());
    let ctx = context();
    let photo = format!("{}/cat/cat1.png", pets.path().display());
    for setup in [
        format!(
            "CREATE EXTERNAL TABLE photos STORED AS IMAGEFOLDER LOCATION '{}/'",
            pets.path().display()
        ),
        "CREATE TABLE classes (idx INT, name VARCHAR) AS VALUES (0, 'cat'), (1, 'dog')".to_string(),
        format!(
            "CREATE TABLE photo_captions (path VARCHAR, caption VARCHAR) AS VALUES \
             ('{photo}', 'a cat'), ('{photo}', 'a small cat')"
        ),
    ] {
        query(&ctx, &setup).await.unwrap();
    }
    let readme = std::fs::read_to_string(format!("{}/README.md", repo())).unwrap();
    let blocks = sql_blocks(&readme);
    assert!(blocks.len() >= 4, "README's sql blocks: {}", blocks.len());
    let mut statements = 0;
    for (line, block) in blocks {
        let sql = block
            .replace("'ViT-B/32'", &format!("'{}'", tiny_model()))
            .replace("'RN50'", &format!("'{resnet}'"))
            .replace("'pets/'", &format!("'{}/'", pets.path().display()));
        let parsed = DFParser::parse_sql(&sql)
            .unwrap_or_else(|e| panic!("README.md line {line}: does not parse: {e}"));
        for statement in parsed {
            let text = statement.to_string();
            let plan = ctx.state().statement_to_plan(statement).await;
            let result = match plan {
                Ok(plan) => match ctx.execute_logical_plan(plan).await {
                    Ok(frame) => frame.collect().await.map(|_| ()),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                panic!("README.md block at line {line}: {text}\nfails: {e}");
            }
            statements += 1;
        }
    }
    assert!(statements >= 15, "{statements} statements run");
}
