-- The demo write-behind table (README, example config, benchmarks). Idempotent.
-- Rows arrive through the stream writebehind:analysis_results, e.g.
--   XADD writebehind:analysis_results * op upsert version 3
--        row '{"project_id":"p1","code_hash":"ab12...","result":{"score":0.9}}'
CREATE TABLE IF NOT EXISTS analysis_results (
  project_id text NOT NULL,
  code_hash text NOT NULL,
  result jsonb,
  updated_at timestamptz NOT NULL DEFAULT now(),
  version bigint,
  PRIMARY KEY (project_id, code_hash)
);
