//! `cargo run --release -p ingestor --example ingest_bench -- [ROWS] [DATABASE_URL]`
//! (the same benchmark as `nta bench ingest`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows = args.next().map(|r| r.parse()).transpose()?.unwrap_or(ingestor::bench::DEFAULT_ROWS);
    let url = args.next().unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    println!("{}", ingestor::run_ingest_bench(&url, rows).await?);
    Ok(())
}
