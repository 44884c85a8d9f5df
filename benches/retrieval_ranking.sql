-- The ranking of zero-shot retrieval at Flickr30k/MSCOCO scale: 5,000
-- queries against 25,000 candidates (512-wide random unit vectors), the 10
-- best of each, with clip_top_k. The peer and the data:
-- benches/peer/retrieval_ranking.py. Run:
--   /usr/bin/time -f "%e s, %M KB peak" clip-sql -q -f benches/retrieval_ranking.sql \
--       --param dir=/tmp/ranking

CREATE EXTERNAL TABLE queries STORED AS PARQUET LOCATION '${dir}/queries.parquet';
CREATE EXTERNAL TABLE candidates STORED AS PARQUET LOCATION '${dir}/candidates.parquet';

-- The best positions' checksum, to compare with the peer's.
SELECT count(*) AS queries, sum(CAST(top[1] AS BIGINT)) AS checksum_of_best
FROM (
  SELECT clip_top_k(v, (SELECT array_agg(v ORDER BY id) FROM candidates), 10) AS top
  FROM queries
);
