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

-- The demo warmer's source (example config, handler `warm`, warmer `baseline_metrics`): on
-- events:version_promoted {"project_id": "demo"} tierd caches this project's rows under
-- project:demo:baseline_metrics.
CREATE TABLE IF NOT EXISTS project_baselines (
  project_id text NOT NULL,
  metric text NOT NULL,
  value double precision NOT NULL,
  PRIMARY KEY (project_id, metric)
);
INSERT INTO project_baselines VALUES
  ('demo', 'latency_p95_ms', 182.0),
  ('demo', 'error_rate', 0.004),
  ('demo', 'coverage', 0.81)
ON CONFLICT DO NOTHING;
