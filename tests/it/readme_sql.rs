//! The SQL that README.md and the guide in `docs/` show runs as written:
//! every ```sql block of a page, in order, in one session per page, with the
//! tiny models standing in for `ViT-B/32` and `RN50` and small folders and
//! tables for those the pages name. A renamed function or setting, or an
//! example that no longer parses, fails here rather than in a reader's first
//! session. The pages are read from `docs/` itself, so a new page is tested
//! without being named here; and the links between the pages lead somewhere.

use std::collections::BTreeSet;
use std::path::Path;

use datafusion::sql::parser::DFParser;
use tempfile::TempDir;

use crate::common::*;

/// The pages that show SQL, with the fewest statements each must run. A page
/// whose blocks stop being ```sql blocks (and so would silently stop
/// running) fails, and so does a page that gains SQL without being listed.
const PAGES_WITH_SQL: &[(&str, usize)] = &[
    ("README.md", 6),
    ("docs/bad-inputs.md", 3),
    ("docs/sql-functions.md", 14),
];

/// The pages: README.md, then every `docs/*.md`, as paths relative to the
/// repository's root.
fn pages() -> Vec<String> {
    let mut docs: Vec<String> = std::fs::read_dir(format!("{}/docs", repo()))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    assert!(docs.contains(&"docs/README.md".to_string()), "{docs:?}");
    std::iter::once("README.md".to_string())
        .chain(docs)
        .collect()
}

fn read_page(page: &str) -> String {
    std::fs::read_to_string(format!("{}/{page}", repo())).unwrap()
}

/// The ```sql blocks of a Markdown file, with the line each starts on.
/// A fence whose language merely mentions SQL (```SQL, ```sql,ignore) is an
/// error: it would be skipped here and still look like SQL to a reader.
fn sql_blocks(page: &str, markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    // Inside a fence: its opening line, and the SQL so far if it is ```sql.
    let mut fence: Option<(usize, Option<String>)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        match &mut fence {
            None if trimmed.starts_with("```") => {
                let language = trimmed.trim_start_matches('`').trim();
                assert!(
                    language == "sql" || !language.to_ascii_lowercase().contains("sql"),
                    "{page} line {number}: write the fence as ```sql (it is {trimmed:?})"
                );
                fence = Some((number, (language == "sql").then(String::new)));
            }
            None => {}
            Some(_) if trimmed.starts_with("```") => {
                if let Some((start, Some(text))) = fence.take() {
                    blocks.push((start, text));
                }
            }
            Some((_, Some(text))) => {
                text.push_str(line);
                text.push('\n');
            }
            Some((_, None)) => {}
        }
    }
    if let Some((start, _)) = fence {
        panic!("{page} line {start}: the fence is never closed");
    }
    blocks
}

/// A session with the CLIP functions and the tables the pages read but do
/// not create: `photos` (an image folder), `classes`, `photo_captions`.
async fn page_context(pets: &Path) -> datafusion::prelude::SessionContext {
    let ctx = context();
    let photo = format!("{}/cat/cat1.png", pets.display());
    for setup in [
        format!(
            "CREATE EXTERNAL TABLE photos STORED AS IMAGEFOLDER LOCATION '{}/'",
            pets.display()
        ),
        "CREATE TABLE classes (idx INT, name VARCHAR) AS VALUES (0, 'cat'), (1, 'dog')".to_string(),
        format!(
            "CREATE TABLE photo_captions (path VARCHAR, caption VARCHAR) AS VALUES \
             ('{photo}', 'a cat'), ('{photo}', 'a small cat')"
        ),
    ] {
        query(&ctx, &setup).await.unwrap();
    }
    ctx
}

/// Runs every ```sql block of `page` in a fresh session; gives the number
/// of statements run. Panics naming the page and the block's line.
async fn run_page(page: &str, pets: &TempDir) -> usize {
    let resnet = format!("{}/tests/fixtures/models/open_clip_resnet_tiny", repo());
    let ctx = page_context(pets.path()).await;
    let mut statements = 0;
    for (line, block) in sql_blocks(page, &read_page(page)) {
        let sql = block
            .replace("'ViT-B/32'", &format!("'{}'", tiny_model()))
            .replace("'RN50'", &format!("'{resnet}'"))
            .replace("'pets/'", &format!("'{}/'", pets.path().display()));
        let parsed = DFParser::parse_sql(&sql)
            .unwrap_or_else(|e| panic!("{page} line {line}: does not parse: {e}"));
        assert!(!parsed.is_empty(), "{page} line {line}: the block is empty");
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
                panic!("{page} block at line {line}: {text}\nfails: {e}");
            }
            statements += 1;
        }
    }
    statements
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_and_docs_sql_runs_as_written() {
    let pets = pets_folder();
    let pages = pages();
    for (listed, _) in PAGES_WITH_SQL {
        assert!(
            pages.iter().any(|page| page == listed),
            "{listed} is in PAGES_WITH_SQL but is not a page: {pages:?}"
        );
    }
    let mut tested = Vec::new();
    for page in &pages {
        let statements = run_page(page, &pets).await;
        match PAGES_WITH_SQL.iter().find(|(listed, _)| listed == page) {
            Some((_, least)) => assert!(
                statements >= *least,
                "{page}: {statements} statements run, expected at least {least}"
            ),
            None => assert_eq!(
                statements, 0,
                "{page} shows SQL: add it to PAGES_WITH_SQL with its statement count"
            ),
        }
        tested.push(page.clone());
    }
    // Every page was read: README.md and each docs/*.md on disk.
    assert_eq!(tested, pages);
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code fences).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_fence = false;
    let mut anchors = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            anchors.insert(anchor_of(line.trim_start_matches('#')));
        }
    }
    anchors
}

/// The relative link targets of a Markdown file (outside code fences), with
/// the line each is on.
fn relative_links(markdown: &str) -> Vec<(usize, String)> {
    let mut in_fence = false;
    let mut links = Vec::new();
    for (index, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            let target = &rest[..rest.find(')').unwrap_or(rest.len())];
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push((index + 1, target.to_string()));
            }
        }
    }
    links
}

/// Every docs page is linked from README.md, and every relative link of
/// README.md and the docs pages leads to a file that exists (and, for a
/// `page.md#anchor` link, to one of its headings).
#[test]
fn the_readme_links_every_docs_page_and_every_link_resolves() {
    let readme = read_page("README.md");
    let readme_targets: BTreeSet<String> = relative_links(&readme)
        .into_iter()
        .map(|(_, target)| target.split('#').next().unwrap().to_string())
        .collect();
    for page in pages().iter().filter(|page| page.starts_with("docs/")) {
        assert!(
            readme_targets.contains(page),
            "README.md does not link {page} (its \"Read on\" list should)"
        );
    }
    for page in pages() {
        let page_path = Path::new(repo()).join(&page);
        let folder = page_path.parent().unwrap();
        let markdown = read_page(&page);
        for (line, target) in relative_links(&markdown) {
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page_path.clone()
            } else {
                folder.join(path)
            };
            assert!(
                file.exists(),
                "{page} line {line}: the link {target:?} leads nowhere"
            );
            if let Some(anchor) = anchor.filter(|_| path.is_empty() || path.ends_with(".md")) {
                let headings = anchors(&std::fs::read_to_string(&file).unwrap());
                assert!(
                    headings.contains(anchor),
                    "{page} line {line}: {target:?} names no heading of {}: {headings:?}",
                    file.display()
                );
            }
        }
    }
}
