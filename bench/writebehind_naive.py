#!/usr/bin/env python3
"""The naive write-behind peer: XREADGROUP a batch, then per entry one INSERT ... ON CONFLICT
in its own transaction, then XACK. What a first implementation in Python looks like.

usage: writebehind_naive.py REDIS_URL PG_DSN MAX_ROWS
Prints: naive rows=N seconds=S rows_per_s=R
"""
import json
import sys
import time

import psycopg2
import redis

STREAM = "writebehind:analysis_results"
GROUP = "naive"
SQL = (
    "INSERT INTO analysis_results AS t (project_id, code_hash, result, updated_at, version) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project_id, code_hash) DO UPDATE SET "
    "result = EXCLUDED.result, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version "
    "WHERE t.version IS NULL OR t.version < EXCLUDED.version"
)


def main():
    url, dsn, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    r = redis.Redis.from_url(url)
    try:
        r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError:
        pass
    pg = psycopg2.connect(dsn)
    done = 0
    t0 = time.monotonic()
    while done < limit:
        got = r.xreadgroup(GROUP, "naive-1", {STREAM: ">"}, count=100, block=1000)
        if not got:
            break
        for _stream, entries in got:
            for entry_id, fields in entries:
                row = json.loads(fields[b"row"])
                version = int(fields.get(b"version", b"0"))
                with pg.cursor() as cur:
                    cur.execute(SQL, (row["project_id"], row["code_hash"],
                                      json.dumps(row["result"]), row["updated_at"], version))
                pg.commit()
                r.xack(STREAM, GROUP, entry_id)
                done += 1
                if done >= limit:
                    break
    seconds = time.monotonic() - t0
    print(f"naive rows={done} seconds={seconds:.3f} rows_per_s={done / seconds:.0f}")


if __name__ == "__main__":
    main()
